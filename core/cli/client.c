/*
 * client.c - HTTP requests to surplusd with libcurl.
 */
#include "client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

struct sink {
    struct reply *rep;
    int fd;
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    size_t len = size * n;

    if (s->fd >= 0 && s->rep->status / 100 == 2) {
        for (size_t off = 0; off < len;) {
            ssize_t w = write(s->fd, data + off, len - off);
            if (w <= 0)
                return 0;
            off += (size_t)w;
        }
        return len;
    }
    char *p = realloc(s->rep->body, s->rep->len + len + 1);
    if (p == NULL)
        return 0;
    s->rep->body = p;
    memcpy(p + s->rep->len, data, len);
    s->rep->len += len;
    p[s->rep->len] = '\0';
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    static const char replayed[] = "Idempotent-Replayed:";
    struct sink *s = arg;
    size_t len = size * n, k = sizeof replayed - 1;
    long st;

    /* Each response's status line starts its headers: a "100 Continue"
     * comes before the answer. */
    if (sscanf(data, "HTTP/%*s %ld", &st) == 1) {
        s->rep->status = st;
        s->rep->replayed = false;
    } else if (len > k && strncasecmp(data, replayed, k) == 0) {
        const char *v = data + k;
        size_t vl = len - k;

        while (vl > 0 && (*v == ' ' || *v == '\t'))
            v++, vl--;
        s->rep->replayed = vl >= 4 && strncasecmp(v, "true", 4) == 0;
    }
    return len;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
                       curl_off_t un)
{
    (void)arg;
    (void)dt;
    (void)dn;
    if (ut > 0)
        fprintf(stderr, "\ruploading: %3d%% (%lld of %lld bytes)",
                (int)(100 * un / ut), (long long)un, (long long)ut);
    return 0;
}

static char *read_token(const char *path)
{
    FILE *f = fopen(path, "re");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    if (f == NULL)
        return NULL;
    n = getline(&line, &cap, f);
    fclose(f);
    if (n <= 0) {
        free(line);
        return NULL;
    }
    line[strcspn(line, "\r\n")] = '\0';
    return line;
}

/* --url, --token-file and --cacert together: 0, or EXIT_USAGE with the
 * reason printed.  A token goes only over TLS: surplusd serves TCP only
 * with it, and anything else listening there would read the token. */
static int check_remote(const struct cli *cli)
{
    if (cli->url == NULL) {
        if (cli->cacert != NULL) {
            cli_error("--cacert goes with --url https://...; the Unix "
                      "socket has no TLS");
            return EXIT_USAGE;
        }
        return 0;
    }
    if (strncasecmp(cli->url, "https://", 8) != 0) {
        cli_error("--url '%s': expected https://HOST:PORT (surplusd serves "
                  "TCP only with TLS, and a token is never sent in clear)",
                  cli->url);
        return EXIT_USAGE;
    }
    if (cli->token_file == NULL) {
        cli_error("--url needs --token-file");
        return EXIT_USAGE;
    }
    if (cli->cacert != NULL && access(cli->cacert, R_OK) < 0) {
        cli_error("--cacert '%s': %s", cli->cacert, strerror(errno));
        return EXIT_CONFIG;
    }
    return 0;
}

/* Why curl got no answer, and the exit code for it: a CA file or a
 * certificate that does not verify is this side's configuration (78);
 * anything else (no socket, refused, timed out) may pass, so try again
 * later (75).  surplusd is named as the user gave it: its socket path or
 * its URL. */
static int transfer_failed(const struct cli *cli, const char *socket,
                           CURL *c, CURLcode rc, const char *detail)
{
    const char *why = detail[0] ? detail : curl_easy_strerror(rc);
    char where[4200];
    long oserr = 0;

    if (cli->url != NULL)
        snprintf(where, sizeof where, "%s", cli->url);
    else
        snprintf(where, sizeof where, "socket %s", socket);
    switch (rc) {
    case CURLE_SSL_CACERT_BADFILE:
        cli_error("--cacert '%s': %s", cli->cacert ? cli->cacert : "",
                  why);
        return EXIT_CONFIG;
    case CURLE_PEER_FAILED_VERIFICATION:
        cli_error("cannot reach surplusd at %s: %s (%s)", where, why,
                  cli->cacert ? "the certificate does not verify with the "
                                "CA certificates in --cacert"
                              : "give the certificate of the CA that "
                                "signed surplusd's with --cacert FILE");
        return EXIT_CONFIG;
    default:
        break;
    }
    /* Over the socket curl speaks of "localhost port 80": the system's
     * reason says more. */
    if (cli->url == NULL && rc == CURLE_COULDNT_CONNECT &&
        curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &oserr) == CURLE_OK &&
        oserr != 0)
        cli_error("cannot reach surplusd at %s: %s%s", where,
                  strerror((int)oserr),
                  oserr == ENOENT || oserr == ECONNREFUSED
                      ? " (is surplusd running? --socket, SURPLUS_SOCKET "
                        "or api.socket name another)"
                      : "");
    else
        cli_error("cannot reach surplusd at %s: %s", where, why);
    return EXIT_TEMPFAIL;
}

int client_request(const struct cli *cli, const char *method,
                   const char *path, int upload_fd, int sink_fd,
                   struct reply *rep)
{
    return client_request_with(cli, method, path, NULL, upload_fd, sink_fd,
                               rep);
}

int client_request_with(const struct cli *cli, const char *method,
                        const char *path, const char *const *headers,
                        int upload_fd, int sink_fd, struct reply *rep)
{
    char detail[CURL_ERROR_SIZE] = "";
    struct sink s = {rep, sink_fd};
    struct curl_slist *hdr = NULL;
    struct config *cf = NULL;
    char url[4096], *token = NULL, *auth = NULL;
    const char *socket = cli->socket;
    FILE *up = NULL;
    CURLcode rc;
    CURL *c;
    int r = 0;

    memset(rep, 0, sizeof *rep);
    if ((r = check_remote(cli)) != 0)
        return r;
    if (cli->url == NULL && socket == NULL) {
        if ((r = cli_load_config(cli, &cf)) != 0)
            return r;
        socket = cf->api.socket;
    }
    if (cli->url != NULL) {
        /* "https://node:8443/" and "https://node:8443" alike */
        size_t n = strlen(cli->url);
        snprintf(url, sizeof url, "%.*s%s",
                 (int)(n > 0 && cli->url[n - 1] == '/' ? n - 1 : n),
                 cli->url, path);
    } else {
        snprintf(url, sizeof url, "http://localhost%s", path);
    }
    if (cli->token_file != NULL) {
        if ((token = read_token(cli->token_file)) == NULL) {
            cli_error("%s: cannot read a token: %s", cli->token_file,
                      strerror(errno ? errno : EINVAL));
            config_free(cf);
            return EXIT_USAGE;
        }
        if (asprintf(&auth, "Authorization: Bearer %s", token) < 0)
            auth = NULL;
        hdr = curl_slist_append(hdr, auth);
    }
    if ((c = curl_easy_init()) == NULL) {
        cli_error("cannot start an HTTP client");
        r = EXIT_INTERNAL;
        goto out;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, detail);
    if (cli->url == NULL)
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket);
    /* The server's certificate is verified against the system's CA
     * certificates or, with --cacert, only against those (a node's own
     * CA, say). */
    if (cli->cacert != NULL) {
        curl_easy_setopt(c, CURLOPT_CAINFO, cli->cacert);
        curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    }
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (upload_fd >= 0) {
        struct stat st;

        if (fstat(upload_fd, &st) < 0 ||
            (up = fdopen(dup(upload_fd), "rb")) == NULL) {
            cli_error("cannot read the bundle: %s", strerror(errno));
            r = EXIT_BUNDLE;
            goto out;
        }
        hdr = curl_slist_append(hdr, "Content-Type: application/octet-stream");
        /* surplusd answers before the body when it will refuse it
         * (too large, draining, bad token); without waiting for its
         * "100 Continue" the answer would be lost to a broken pipe. */
        hdr = curl_slist_append(hdr, "Expect: 100-continue");
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READDATA, up);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
        if (isatty(2) && st.st_size > 1024 * 1024) {
            curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
            curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        }
    }
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        hdr = curl_slist_append(hdr, headers[i]);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    rc = curl_easy_perform(c);
    if (upload_fd >= 0 && isatty(2))
        fputc('\n', stderr);
    /* Cut off after "100 Continue" is no answer either. */
    if (rc != CURLE_OK && rep->status < 200) {
        reply_free(rep);
        r = transfer_failed(cli, socket, c, rc, detail);
    }
    curl_easy_cleanup(c);
out:
    if (up)
        fclose(up);
    curl_slist_free_all(hdr);
    free(auth);
    free(token);
    config_free(cf);
    return r;
}

void reply_free(struct reply *rep)
{
    free(rep->body);
    memset(rep, 0, sizeof *rep);
}

int client_fail(const struct reply *rep)
{
    json_t *j = rep->body ? json_loads(rep->body, 0, NULL) : NULL;
    const char *msg = j ? json_string_value(json_object_get(j, "error")) : NULL;
    const char *code = j ? json_string_value(json_object_get(j,
                                                             "reason_code"))
                         : NULL;
    bool never = code != NULL && strcmp(code, "exceeds_max_gpus") == 0;

    cli_error("%s (HTTP %ld)", msg ? msg : "request failed", rep->status);
    json_decref(j);
    /* More GPUs than the tenant may ever lease: no retry will help. */
    if (never)
        return EXIT_NO_DEVICE;
    switch (rep->status) {
    case 401:
    case 403:
        return EXIT_NOT_PERMITTED;
    case 413:
    case 422:
        return EXIT_BUNDLE;
    case 429:
    case 503:
    case 507:
        return EXIT_TEMPFAIL;
    case 400:
    case 404:
    case 405:
    case 409:
        return EXIT_USAGE;
    default:
        return EXIT_INTERNAL;
    }
}

json_t *client_json(const struct reply *rep)
{
    json_error_t err;
    json_t *j = json_loads(rep->body ? rep->body : "", 0, &err);

    if (j == NULL)
        cli_error("surplusd answered something that is not JSON: %s",
                  err.text);
    return j;
}
