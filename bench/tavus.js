// (c) the njs gateway: what an njs user would write for
// DELETE /replicas/{id}: the checks, a subrequest to the internal
// proxy_pass location /_tavus/ (ngx.fetch() has no keepalive; the
// subrequest goes through the keepalive upstream group), and the answer
// translated with JSON.parse/JSON.stringify, as ngx_tavus_module does.

const ID = /^[A-Za-z0-9_-]{1,128}$/;

function answer(r, status, obj) {
    r.headersOut['Content-Type'] = 'application/json';
    r.headersOut['Cache-Control'] = 'no-store';
    r.return(status, JSON.stringify(obj) + '\n');
}

function fail(r, status, code, message, id) {
    answer(r, status, {
        error: message,
        code: code,
        replica_id: id === undefined ? null : id,
        request_id: r.variables.request_id
    });
}

function translate(r, id, reply) {
    var st = reply.status;
    var status, code, message;

    if (st >= 200 && st < 300) {
        answer(r, 200, {
            replica_id: id,
            deleted: true,
            hard: false,
            request_id: r.variables.request_id
        });
        return;
    }

    if (st == 401 || st == 403) {
        r.error('upstream rejected the API key: ' + st);
        fail(r, 502, 'upstream_rejected_key',
             "the upstream rejected the gateway's API key", id);
        return;
    }

    if (st == 404) {
        status = 404; code = 'not_found'; message = 'replica not found';

    } else if (st == 429) {
        status = 429; code = 'rate_limited';
        message = 'rate limited by the upstream';

    } else if (st >= 400 && st < 500) {
        status = st; code = 'upstream_client_error';
        message = 'the upstream rejected the request';

    } else {
        fail(r, 502, 'upstream_error', 'the upstream failed', id);
        return;
    }

    try {
        var j = JSON.parse(reply.responseText);
        var m = (j && typeof j.error == 'string') ? j.error
                : (j && typeof j.message == 'string') ? j.message : '';

        if (m.length) {
            message = m.substring(0, 512);
        }

    } catch (e) {
        /* not JSON: the generic message stays */
    }

    fail(r, status, code, message, id);
}

function deleteReplica(r) {
    if (r.method != 'DELETE') {
        r.headersOut['Allow'] = 'DELETE';
        fail(r, 405, 'method_not_allowed', 'only DELETE is allowed');
        return;
    }

    var id = r.variables.replica_id;

    if (!ID.test(id)) {
        fail(r, 400, 'invalid_replica_id',
             'replica id must be 1 to 128 characters '
             + 'of A-Z, a-z, 0-9, "_" and "-"');
        return;
    }

    r.subrequest('/_tavus/' + id, { method: 'DELETE' },
                 function (reply) { translate(r, id, reply); });
}

export default { deleteReplica };
