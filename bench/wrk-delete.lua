-- wrk sends DELETE to the URL it is given
wrk.method = "DELETE"
