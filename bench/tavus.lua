-- (d) the Lua gateway: what an OpenResty user would write for
-- DELETE /replicas/{id}: the checks, ngx.location.capture to the internal
-- proxy_pass location /_tavus/ (keepalive upstream group), and the
-- answer translated with cjson, as ngx_tavus_module translates it.
-- Loaded once per worker by require(); delete_replica() runs per request.

local cjson = require "cjson.safe"

local ngx = ngx
local capture = ngx.location.capture
local encode = cjson.encode
local decode = cjson.decode
local type = type

local HTTP_DELETE = ngx.HTTP_DELETE

local _M = {}

local function answer(status, t)
    local body = encode(t) .. "\n"

    ngx.status = status
    local h = ngx.header
    h["Content-Type"] = "application/json"
    h["Cache-Control"] = "no-store"
    h["Content-Length"] = #body
    ngx.print(body)
end

local function fail(status, code, message, id)
    answer(status, {
        error = message,
        code = code,
        replica_id = id or cjson.null,
        request_id = ngx.var.request_id,
    })
end

function _M.delete_replica()
    if ngx.req.get_method() ~= "DELETE" then
        ngx.header["Allow"] = "DELETE"
        return fail(405, "method_not_allowed", "only DELETE is allowed")
    end

    local id = ngx.var.replica_id

    if #id == 0 or #id > 128 or id:find("[^%w_%-]") then
        return fail(400, "invalid_replica_id",
                    "replica id must be 1 to 128 characters "
                    .. "of A-Z, a-z, 0-9, \"_\" and \"-\"")
    end

    local res = capture("/_tavus/" .. id, { method = HTTP_DELETE })
    local st = res.status

    if st >= 200 and st < 300 then
        return answer(200, {
            replica_id = id,
            deleted = true,
            hard = false,
            request_id = ngx.var.request_id,
        })
    end

    local status, code, message

    if st == 401 or st == 403 then
        status, code = 502, "upstream_rejected_key"
        message = "the upstream rejected the gateway's API key"
        ngx.log(ngx.ERR, "upstream rejected the API key: ", st)

    elseif st == 404 then
        status, code, message = 404, "not_found", "replica not found"

    elseif st == 429 then
        status, code = 429, "rate_limited"
        message = "rate limited by the upstream"

    elseif st >= 400 and st < 500 then
        status, code = st, "upstream_client_error"
        message = "the upstream rejected the request"

    else
        return fail(502, "upstream_error", "the upstream failed", id)
    end

    if code ~= "upstream_rejected_key" then
        local j = decode(res.body)

        if type(j) == "table" then
            local m = j.error

            if type(m) ~= "string" then
                m = j.message
            end

            if type(m) == "string" and #m > 0 then
                message = m:sub(1, 512)
            end
        end
    end

    return fail(status, code, message, id)
end

return _M
