// Test-only OAuth 2.0 authorization server (oidc-provider) plus a toy resource API, for
// Latchkey's integration tests. Binds to 127.0.0.1 only. See README.md for flags and endpoints.
//
//   node server.mjs --port=P --resource-port=R [--access-ttl=5] [--refresh-ttl=1209600]
//                   [--state-file=FILE]
//
// stdout carries exactly one line, READY {...}, once both ports listen; diagnostics go to stderr
// and never contain a token or a client secret.

import crypto from 'node:crypto';
import http from 'node:http';
import querystring from 'node:querystring';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

import { Store } from './store.mjs';

// oidc-provider prints its NOTICE lines with console.info, i.e. on stdout, which is reserved for
// the READY line: send everything the console prints to stderr.
console.log = (...args) => console.error(...args);
console.info = console.log;
console.debug = console.log;

const HOST = '127.0.0.1';
const SCOPES = ['openid', 'offline_access', 'leads.read', 'leads.write', 'reports.send'];
const TOKEN_PATH = '/token';
const REVOCATION_PATH = '/token/revocation';
const FORM_LIMIT = 56 * 1024; // oidc-provider's own limit for form bodies
const RESOURCE_BODY_LIMIT = 1024 * 1024;
const DAY = 24 * 60 * 60;
// Models whose entries belong to a grant (payload.grantId), as in oidc-provider's adapters.
const GRANT_MEMBERS = ['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode'];

// ---------------------------------------------------------------------------------------------
// Command line

function fail(message) {
  process.stderr.write(`oauth-server: ${message}\n`);
  process.exit(2);
}

function intFlag(values, name, fallback, min, max) {
  const raw = values[name];
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    fail(`--${name} must be an integer in [${min}, ${max}], got "${raw}"`);
  }
  return Number(raw);
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      port: { type: 'string' },
      'resource-port': { type: 'string' },
      'access-ttl': { type: 'string' },
      'refresh-ttl': { type: 'string' },
      'state-file': { type: 'string' },
    },
    strict: true,
  });
} catch (err) {
  fail(err.message);
}
const flags = parsed.values;
const store = new Store(flags['state-file']);
const meta = store.meta;
// Port 0 picks a free port (reported in the READY line); with a state file, a restart without
// explicit ports reuses the previous ones so that the issuer and URLs stay the same.
const wantedPort = intFlag(flags, 'port', meta.port ?? 0, 0, 65535);
const wantedResourcePort = intFlag(flags, 'resource-port', meta.resourcePort ?? 0, 0, 65535);
const accessTtl = intFlag(flags, 'access-ttl', 5, 1, 10 * 365 * DAY);
const refreshTtl = intFlag(flags, 'refresh-ttl', 14 * DAY, 1, 10 * 365 * DAY);

// ---------------------------------------------------------------------------------------------
// Secrets and keys: environment, else the state file, else fresh random values.

function defaultSecret(tag) {
  // Full of characters that must be form-urlencoded (RFC 6749 §2.3.1): a client that sends them
  // raw in Basic credentials or in a form body, or encodes them twice, fails to authenticate.
  return `${tag}+${crypto.randomBytes(18).toString('base64url')}/x:y z%2=&k`;
}

meta.secrets ??= {};
meta.secrets.basic = process.env.LK_TEST_CLIENT_SECRET_BASIC || meta.secrets.basic
  || defaultSecret('b');
meta.secrets.post = process.env.LK_TEST_CLIENT_SECRET_POST || meta.secrets.post
  || defaultSecret('p');
// A per-run signing key and cookie key, instead of oidc-provider's shared development ones.
// P-256 rather than RSA: generating a 2048-bit RSA key delays startup by up to a second.
meta.jwk ??= {
  ...crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }),
  kid: crypto.randomBytes(8).toString('hex'),
  use: 'sig',
  alg: 'ES256',
};
meta.cookieKeys ??= [crypto.randomBytes(32).toString('base64url')];

const CLIENTS = new Map([
  ['latchkey-basic', { secret: meta.secrets.basic, method: 'client_secret_basic' }],
  ['latchkey-post', { secret: meta.secrets.post, method: 'client_secret_post' }],
]);

// ---------------------------------------------------------------------------------------------
// Test state: counters, the resource log and pending injected failures.

function freshStats() {
  return {
    token_requests: { authorization_code: 0, refresh_token: 0, other: 0 },
    refresh_results: { ok: 0, error: 0 },
    refresh_errors: {},
    rotations: 0,
    resource_requests: 0,
    revocation_requests: 0,
  };
}

let stats = freshStats();
let resourceLog = [];
// Every access and refresh token value the token endpoint returned, oldest first. Raw on purpose:
// the integration tests scan latchkeyd's files and logs for them. Never cleared.
const issuedTokens = [];
// { remaining, status, headers, body } or null, set by /__test/fail-token and fail-resource.
const injected = { token: null, resource: null };

const sha256 = (text) => crypto.createHash('sha256').update(text).digest('hex');

function takeInjection(kind) {
  const failure = injected[kind];
  if (!failure || failure.remaining <= 0) return null;
  failure.remaining -= 1;
  if (failure.remaining === 0) injected[kind] = null;
  return failure;
}

/** The body of an injected response as [text, content type] (JSON unless clearly not). */
function injectedBody(failure) {
  if (typeof failure.body !== 'string') return [JSON.stringify(failure.body), 'application/json'];
  try {
    JSON.parse(failure.body);
    return [failure.body, 'application/json'];
  } catch {
    return [failure.body, 'text/plain; charset=utf-8'];
  }
}

/** The OAuth "error" member of a response body, if there is one. */
function errorCodeOf(body) {
  let value = body;
  if (typeof value === 'string' || Buffer.isBuffer(value)) {
    try {
      value = JSON.parse(value.toString());
    } catch {
      return undefined;
    }
  }
  return typeof value?.error === 'string' ? value.error : undefined;
}

/** Counts one finished token request. `form` is the parsed request body (or null). */
function countTokenRequest(form, status, body, errorCode) {
  const grantType = typeof form?.grant_type === 'string' ? form.grant_type : undefined;
  if (grantType === 'authorization_code' || grantType === 'refresh_token') {
    stats.token_requests[grantType] += 1;
  } else {
    stats.token_requests.other += 1;
  }
  if (grantType !== 'refresh_token') return;

  const error = errorCode ?? errorCodeOf(body);
  if (status === 200 && error === undefined) {
    stats.refresh_results.ok += 1;
    if (typeof body?.refresh_token === 'string' && body.refresh_token !== form.refresh_token) {
      stats.rotations += 1;
    }
  } else {
    stats.refresh_results.error += 1;
    const key = error ?? `http_${status}`;
    stats.refresh_errors[key] = (stats.refresh_errors[key] ?? 0) + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// Small HTTP helpers

async function readBody(req, limit) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw Object.assign(new Error('request body too large'), { status: 413 });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function parseJsonOrString(buffer) {
  if (buffer.length === 0) return null;
  const text = buffer.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Which client authentication a token/revocation request used: [method, clientId]. */
function presentedClientAuth(headers, form) {
  if (typeof form.client_secret === 'string' && form.client_secret !== '') {
    return ['client_secret_post', form.client_id];
  }
  const match = /^basic +(\S+)$/i.exec(headers.authorization ?? '');
  if (match) {
    const pair = Buffer.from(match[1], 'base64').toString('utf8');
    const colon = pair.indexOf(':');
    if (colon > 0) {
      try {
        return ['client_secret_basic',
          decodeURIComponent(pair.slice(0, colon).replace(/\+/g, '%20'))];
      } catch {
        // Malformed escapes: leave the verdict to oidc-provider.
      }
    }
  }
  return [undefined, undefined];
}

// ---------------------------------------------------------------------------------------------
// Listen first, so that port 0 works: the issuer has to contain the real port.

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, () => {
      server.off('error', reject);
      resolve(server.address().port);
    });
  });
}

const providerServer = http.createServer();
const resourceServer = http.createServer();
let port;
let resourcePort;
try {
  port = await listen(providerServer, wantedPort);
  resourcePort = await listen(resourceServer, wantedResourcePort);
} catch (err) {
  process.stderr.write(`oauth-server: cannot listen: ${err.message}\n`);
  process.exit(1);
}
meta.port = port;
meta.resourcePort = resourcePort;
store.save();

const issuer = `http://${HOST}:${port}`;
const redirectUri = `${issuer}/cb`;

// ---------------------------------------------------------------------------------------------
// The authorization server

function htmlEscape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const provider = new Provider(issuer, {
  adapter: store.adapterClass(),
  clients: [...CLIENTS].map(([clientId, { secret, method }]) => ({
    client_id: clientId,
    client_secret: secret,
    token_endpoint_auth_method: method,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    id_token_signed_response_alg: 'ES256',
    scope: SCOPES.join(' '),
  })),
  scopes: SCOPES,
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
  features: {
    devInteractions: { enabled: true },
    revocation: {
      enabled: true,
      // oidc-provider's default rule, restated only to silence its notice about the default.
      allowedPolicy: async (ctx, client, token) => {
        if (token.clientId !== client.clientId) {
          throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
        }
        return true;
      },
    },
  },
  // Refresh tokens for every code grant that was given offline_access, rotated on every use.
  // Reuse of a rotated-out token makes oidc-provider revoke the whole grant (not configurable).
  issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token')
    && code.scopes.has('offline_access'),
  rotateRefreshToken: () => true,
  // S256 is the only method oidc-provider 9 accepts; PKCE stays optional for these confidential
  // clients (login.mjs always sends it).
  pkce: { required: () => false },
  // Access tokens stay opaque (the default without resource indicators), so the resource API
  // looks them up with provider.AccessToken.find().
  //
  // oidc-provider tolerates 15 s of clock skew by default, which would keep expired access
  // tokens alive for 15 s more: expiry must be exact here.
  clockTolerance: 0,
  ttl: {
    AccessToken: accessTtl,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: refreshTtl,
    Interaction: 3600,
    Session: 14 * DAY,
    Grant: Math.max(refreshTtl, 365 * DAY),
  },
  routes: { token: TOKEN_PATH, revocation: REVOCATION_PATH },
  jwks: { keys: [meta.jwk] },
  cookies: { keys: meta.cookieKeys },
  clientBasedCORS: () => false,
  renderError: async (ctx, out) => {
    ctx.state.oauthError = out.error; // for countTokenRequest when the error page is HTML
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><title>error</title><pre>${
      Object.entries(out).map(([k, v]) => `${htmlEscape(k)}: ${htmlEscape(v)}`).join('\n')}</pre>`;
  },
});

// Why each token request failed, on stderr (oidc-provider keeps the reason out of the response).
for (const event of ['grant.error', 'revocation.error', 'server_error']) {
  provider.on(event, (ctx, err) => {
    const detail = err.error_detail ? ` (${err.error_detail})` : '';
    process.stderr.write(`oauth-server: ${event}: ${err.message}${detail}\n`);
  });
}

/** Handles /__test/* requests (no auth: this is a test fixture bound to loopback). */
async function control(ctx) {
  const route = `${ctx.method} ${ctx.path}`;
  let input = {};
  if (ctx.method === 'POST') {
    input = parseJsonOrString(await readBody(ctx.req, 64 * 1024)) ?? {};
    if (typeof input !== 'object' || Array.isArray(input)) {
      ctx.status = 400;
      ctx.body = { error: 'invalid_request', error_description: 'body must be a JSON object' };
      return;
    }
  }

  const failureFrom = (defaultStatus, defaultBody) => {
    const count = input.count ?? 1;
    const status = input.status ?? defaultStatus;
    const headers = input.headers ?? {};
    if (!Number.isInteger(count) || count < 0) throw new Error('count must be an integer >= 0');
    if (!Number.isInteger(status) || status < 100 || status > 599) {
      throw new Error('status must be an HTTP status code');
    }
    if (typeof headers !== 'object' || Array.isArray(headers)
        || Object.values(headers).some((v) => typeof v !== 'string')) {
      throw new Error('headers must be an object of strings');
    }
    const body = input.body === undefined ? defaultBody : input.body;
    return count === 0 ? null : { remaining: count, status, headers, body };
  };

  try {
    switch (route) {
      case 'GET /__test/stats':
        ctx.body = stats;
        return;
      case 'GET /__test/resource-log':
        ctx.body = resourceLog;
        return;
      case 'GET /__test/issued-tokens':
        ctx.body = issuedTokens;
        return;
      case 'POST /__test/reset-stats':
        stats = freshStats();
        resourceLog = [];
        ctx.body = { ok: true };
        return;
      case 'POST /__test/fail-token':
        injected.token = failureFrom(500, { error: 'server_error' });
        ctx.body = { ok: true, pending: injected.token?.remaining ?? 0 };
        return;
      case 'POST /__test/fail-resource':
        injected.resource = failureFrom(503, {
          error: { 401: 'invalid_token', 429: 'rate_limited' }[input.status]
            ?? 'temporarily_unavailable',
        });
        if (injected.resource?.status === 401) {
          injected.resource.headers = {
            'WWW-Authenticate': 'Bearer error="invalid_token"',
            ...injected.resource.headers,
          };
        }
        ctx.body = { ok: true, pending: injected.resource?.remaining ?? 0 };
        return;
      case 'POST /__test/revoke': {
        if (typeof input.account !== 'string') throw new Error('account must be a string');
        ctx.body = { ok: true, revoked_grants: revokeAccount(input.account) };
        return;
      }
      case 'GET /__test/grant-valid': {
        const account = ctx.query.account;
        if (typeof account !== 'string') throw new Error('account query parameter required');
        ctx.body = { valid: grantValid(account) };
        return;
      }
      default:
        ctx.status = 404;
        ctx.body = { error: 'not_found' };
    }
  } catch (err) {
    ctx.status = 400;
    ctx.body = { error: 'invalid_request', error_description: err.message };
  }
}

/** Destroys every grant of `account` and every token issued under it; returns how many grants. */
function revokeAccount(account) {
  let grants = 0;
  for (const [grantId, grant] of [...store.list('Grant')]) {
    if (grant.accountId !== account) continue;
    for (const model of GRANT_MEMBERS) store.deleteByGrantId(model, grantId);
    store.delete('Grant', grantId);
    grants += 1;
  }
  // Tokens whose grant is already gone would fail anyway; drop them too for a clean store.
  for (const model of GRANT_MEMBERS) {
    for (const [id, payload] of [...store.list(model)]) {
      if (payload.accountId === account) store.delete(model, id);
    }
  }
  return grants;
}

/** Whether `account` has a live grant holding an unconsumed, unexpired refresh token. */
function grantValid(account) {
  const grantIds = new Set();
  for (const [grantId, grant] of store.list('Grant')) {
    if (grant.accountId === account) grantIds.add(grantId);
  }
  const now = Math.floor(Date.now() / 1000);
  for (const [, token] of store.list('RefreshToken')) {
    if (grantIds.has(token.grantId) && !token.consumed && !(token.exp <= now)) return true;
  }
  return false;
}

/**
 * Peeks at a form-encoded body before oidc-provider sees it. oidc-provider supports an upstream
 * body parser: when the request stream was already consumed it parses req.body instead
 * (lib/shared/selective_body.js, which logs a one-time warning on stderr). Handing it the raw
 * bytes keeps its own parsing, dupe checks and errors unchanged.
 */
async function peekForm(ctx) {
  if (!ctx.is('application/x-www-form-urlencoded')) return null;
  const raw = await readBody(ctx.req, FORM_LIMIT);
  ctx.req.body = raw;
  return querystring.parse(raw.toString('utf8'));
}

provider.use(async (ctx, next) => {
  if (ctx.path.startsWith('/__test/')) {
    await control(ctx);
    return;
  }
  const isToken = ctx.method === 'POST' && ctx.path === TOKEN_PATH;
  const isRevocation = ctx.method === 'POST' && ctx.path === REVOCATION_PATH;
  if (!isToken && !isRevocation) {
    await next();
    return;
  }
  if (isRevocation) stats.revocation_requests += 1;

  let form;
  try {
    form = await peekForm(ctx);
  } catch (err) {
    ctx.status = err.status ?? 400;
    ctx.body = { error: 'invalid_request', error_description: 'failed to read the request body' };
    if (isToken) countTokenRequest(null, ctx.status, ctx.body);
    return;
  }

  // oidc-provider lets any client_secret_* client use either Basic or the form body. Real
  // providers often do not, so this server holds each client to its registered method.
  if (form) {
    const [method, clientId] = presentedClientAuth(ctx.headers, form);
    const registered = CLIENTS.get(clientId)?.method;
    if (method && registered && method !== registered) {
      ctx.status = 401;
      ctx.body = {
        error: 'invalid_client',
        error_description: `client authentication must use ${registered}, not ${method}`,
      };
      if (isToken) countTokenRequest(form, ctx.status, ctx.body);
      return;
    }
  }

  if (isToken && form?.grant_type === 'refresh_token') {
    const failure = takeInjection('token');
    if (failure) {
      const [text, type] = injectedBody(failure);
      ctx.status = failure.status;
      ctx.set('Cache-Control', 'no-store');
      ctx.type = type;
      ctx.set(failure.headers);
      ctx.body = text;
      // Always an error in the stats, even an injected 200 (e.g. one without an "error").
      countTokenRequest(form, failure.status, text, errorCodeOf(text) ?? `http_${failure.status}`);
      return;
    }
  }

  await next();
  if (isToken) {
    countTokenRequest(form, ctx.status, ctx.body, ctx.state.oauthError);
    if (ctx.status === 200) {
      for (const name of ['access_token', 'refresh_token']) {
        if (typeof ctx.body?.[name] === 'string') issuedTokens.push(ctx.body[name]);
      }
    }
  }
});

providerServer.on('request', provider.callback());

// ---------------------------------------------------------------------------------------------
// The resource API

/** Looks a bearer token up; returns { sub, scopes } if it is live, else null. */
async function validateAccessToken(value) {
  const token = await provider.AccessToken.find(value);
  if (!token || !(token.exp * 1000 > Date.now())) return null;
  // Revocation destroys the grant with its tokens; checking the grant as well costs nothing.
  if (!token.grantId || !(await provider.Grant.find(token.grantId))) return null;
  return { sub: token.accountId, scopes: [...token.scopes] };
}

function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(text);
}

async function handleResource(req, res) {
  const at = Date.now();
  const url = new URL(req.url, `http://${HOST}`);
  let raw = Buffer.alloc(0);
  let tooLarge = false;
  try {
    raw = await readBody(req, RESOURCE_BODY_LIMIT);
  } catch {
    tooLarge = true;
  }
  const body = parseJsonOrString(raw);
  const idempotencyKey = req.headers['idempotency-key'] ?? null;

  // The scheme must be exactly "Bearer" (case-sensitive on purpose, like some real APIs); the
  // hash covers whatever credential followed the scheme, so a test can see what was sent.
  const authorization = req.headers.authorization ?? '';
  const space = authorization.indexOf(' ');
  const scheme = space < 0 ? authorization : authorization.slice(0, space);
  const presented = space < 0 ? '' : authorization.slice(space + 1).trim();
  const token = scheme === 'Bearer' && presented ? await validateAccessToken(presented) : null;

  let status;
  let responseBody;
  let headers = {};
  const failure = takeInjection('resource');
  if (tooLarge) {
    status = 413;
    responseBody = { error: 'request_too_large' };
  } else if (failure) {
    status = failure.status;
    headers = failure.headers;
    responseBody = failure.body;
  } else if (!url.pathname.startsWith('/api/')) {
    status = 404;
    responseBody = { error: 'not_found' };
  } else if (!token) {
    status = 401;
    responseBody = { error: 'invalid_token' };
    headers = { 'WWW-Authenticate': 'Bearer error="invalid_token"' };
  } else {
    status = 200;
    responseBody = {
      ok: true,
      sub: token.sub,
      method: req.method,
      path: url.pathname,
      scopes: token.scopes,
      idempotency_key: idempotencyKey,
      body,
    };
  }

  stats.resource_requests += 1;
  resourceLog.push({
    at,
    method: req.method,
    path: url.pathname,
    query: url.search || null,
    status,
    sub: token?.sub ?? null,
    idempotency_key: idempotencyKey,
    token_sha256: presented ? sha256(presented) : null,
    body,
  });

  if (failure) {
    const [text, type] = injectedBody(failure);
    res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', ...headers });
    res.end(text);
  } else {
    sendJson(res, status, responseBody, headers);
  }
}

resourceServer.on('request', (req, res) => {
  handleResource(req, res).catch((err) => {
    process.stderr.write(`oauth-server: resource API error: ${err.stack}\n`);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
    else res.destroy();
  });
});

// ---------------------------------------------------------------------------------------------
// Ready, and a clean exit on SIGTERM/SIGINT

let stopping = false;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`oauth-server: ${signal}, shutting down\n`);
  store.save();
  const closing = [providerServer, resourceServer].map((server) => new Promise((resolve) => {
    server.close(resolve);
    server.closeAllConnections();
  }));
  Promise.all(closing).then(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

// A test fixture must not outlive whatever started it: if that process dies without stopping
// us (a crashed test binary, a killed script), we are re-parented and exit on our own.
const startedBy = process.ppid;
setInterval(() => {
  if (process.ppid !== startedBy) shutdown('parent exit');
}, 500).unref();

const ready = {
  issuer,
  token_url: `${issuer}${TOKEN_PATH}`,
  resource_base: `http://${HOST}:${resourcePort}/api`,
  clients: Object.fromEntries([...CLIENTS].map(([id, { secret }]) => [id, secret])),
  revocation_url: `${issuer}${REVOCATION_PATH}`,
};
process.stdout.write(`READY ${JSON.stringify(ready)}\n`);
