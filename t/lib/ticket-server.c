
/*
 * Copyright (C) ngx_tavus_module authors
 *
 * A TLSv1.3 server for the tests that gives out no session ticket at the
 * handshake, and one later: just before its answer to the second request
 * on a connection, which it then closes.  nginx's own servers cannot be
 * made to do this.  Built by the tests that use it:
 *
 *     cc -o ticket-server t/lib/ticket-server.c -lssl -lcrypto
 *     ticket-server PORT CERT KEY LOG
 *
 * It answers every request with an empty 200, and writes to LOG a line
 * a connection ("conn reused=0|1") and a line a request ("req N key=yes|no",
 * whether an x-api-key header came, never its value).
 */


#include <openssl/ssl.h>
#include <openssl/err.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static void serve(SSL_CTX *ctx, int c, FILE *log);


int
main(int argc, char **argv)
{
    int                 s, c, one;
    FILE               *log;
    SSL_CTX            *ctx;
    struct sockaddr_in  sin;

    if (argc != 5) {
        fprintf(stderr, "usage: %s PORT CERT KEY LOG\n", argv[0]);
        return 2;
    }

    log = fopen(argv[4], "a");
    ctx = SSL_CTX_new(TLS_server_method());

    if (log == NULL || ctx == NULL
        || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION)
        || SSL_CTX_use_certificate_chain_file(ctx, argv[2]) != 1
        || SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1
        || !SSL_CTX_set_num_tickets(ctx, 0))
    {
        ERR_print_errors_fp(stderr);
        return 1;
    }

    setvbuf(log, NULL, _IOLBF, 0);

    s = socket(AF_INET, SOCK_STREAM, 0);
    one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(atoi(argv[1]));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    if (bind(s, (struct sockaddr *) &sin, sizeof(sin)) != 0
        || listen(s, 16) != 0)
    {
        perror("bind");
        return 1;
    }

    for ( ;; ) {
        c = accept(s, NULL, NULL);

        if (c >= 0) {
            serve(ctx, c, log);
            close(c);
        }
    }
}


static void
serve(SSL_CTX *ctx, int c, FILE *log)
{
    int          n, len, requests;
    char         buf[8192], *end;
    SSL         *ssl;
    const char  *answer;

    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, c);

    if (SSL_accept(ssl) != 1) {
        fprintf(log, "conn handshake failed\n");
        SSL_free(ssl);
        return;
    }

    fprintf(log, "conn reused=%d\n", SSL_session_reused(ssl));

    len = 0;
    requests = 0;

    for ( ;; ) {
        n = SSL_read(ssl, buf + len, sizeof(buf) - 1 - len);

        if (n <= 0) {
            break;
        }

        len += n;
        buf[len] = '\0';

        while ((end = strstr(buf, "\r\n\r\n")) != NULL) {
            requests++;

            fprintf(log, "req %d key=%s\n", requests,
                    strstr(buf, "\r\nx-api-key:") ? "yes" : "no");

            if (requests == 2) {
                SSL_new_session_ticket(ssl);
                answer = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                         "Connection: close\r\n\r\n";

            } else {
                answer = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
            }

            SSL_write(ssl, answer, strlen(answer));

            if (requests == 2) {
                goto done;
            }

            end += 4;
            len -= end - buf;
            memmove(buf, end, len + 1);
        }
    }

done:

    SSL_shutdown(ssl);
    SSL_free(ssl);
}
