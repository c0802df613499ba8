// Logs a user in without a browser: drives server.mjs's real authorization-code flow (PKCE S256,
// oidc-provider's dev-interaction login and consent forms) over plain HTTP with a small cookie
// jar, then exchanges the code at the token endpoint. Prints the token response JSON on stdout.
//
//   node login.mjs --issuer=http://127.0.0.1:P --client=latchkey-basic --secret=S --user=alice \
//       [--scope="openid offline_access leads.read leads.write"] [--auth=basic|post] \
//       [--redirect-uri=ISSUER/cb]
//
// --secret may be replaced by the LK_TEST_CLIENT_SECRET environment variable (keeps it out of
// the process list). --auth defaults to "post" for a client whose id ends in "-post", else
// "basic". Exits non-zero with a message on stderr on any failure.

import crypto from 'node:crypto';
import { parseArgs } from 'node:util';

const MAX_STEPS = 20;

class LoginError extends Error {}

function die(message) {
  process.stderr.write(`login.mjs: ${message}\n`);
  process.exit(1);
}

const base64url = (buffer) => Buffer.from(buffer).toString('base64url');

/** application/x-www-form-urlencoded encoding of one value (RFC 6749 §2.3.1, Appendix B). */
const formEncode = (value) => new URLSearchParams({ v: value }).toString().slice(2);

/** Decodes the entities that oidc-provider's HTML escaping produces. */
function decodeEntities(text) {
  const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (all, code) => {
    if (code[0] !== '#') return named[code.toLowerCase()] ?? all;
    const n = code[1].toLowerCase() === 'x' ? parseInt(code.slice(2), 16) : Number(code.slice(1));
    return String.fromCodePoint(n);
  });
}

function attribute(tag, name) {
  const match = new RegExp(`\\s${name}\\s*=\\s*"([^"]*)"`, 'i').exec(tag);
  return match ? decodeEntities(match[1]) : undefined;
}

/** Just enough of RFC 6265 for one origin: name, value, Path, and deletion. */
class CookieJar {
  #cookies = new Map(); // "name\0path" -> { name, value, path }

  store(url, response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = url.pathname.replace(/\/[^/]*$/, '') || '/';
      let expired = false;
      for (const attr of attrs) {
        const [key, ...rest] = attr.split('=');
        const attrValue = rest.join('=').trim();
        switch (key.trim().toLowerCase()) {
          case 'path':
            if (attrValue.startsWith('/')) path = attrValue;
            break;
          case 'max-age':
            if (Number(attrValue) <= 0) expired = true;
            break;
          case 'expires':
            if (Date.parse(attrValue) <= Date.now()) expired = true;
            break;
          default:
        }
      }
      const key = `${name}\0${path}`;
      if (expired) this.#cookies.delete(key);
      else this.#cookies.set(key, { name, value, path });
    }
  }

  header(url) {
    const matches = (path) => url.pathname === path
      || url.pathname.startsWith(path.endsWith('/') ? path : `${path}/`);
    return [...this.#cookies.values()]
      .filter(({ path }) => matches(path))
      .sort((a, b) => b.path.length - a.path.length)
      .map(({ name, value }) => `${name}=${value}`)
      .join('; ');
  }
}

const jar = new CookieJar();

async function send(url, { method = 'GET', form } = {}) {
  const headers = { Accept: 'text/html' };
  const cookie = jar.header(url);
  if (cookie) headers.Cookie = cookie;
  let body;
  if (form) {
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(form).toString();
  }
  const response = await fetch(url, { method, headers, body, redirect: 'manual' });
  jar.store(url, response);
  return response;
}

/** Fills in the single form of a dev-interaction page (login or consent). */
function fillForm(html, pageUrl, user, password) {
  const form = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) throw new LoginError(`no form on ${pageUrl.pathname}: ${html.slice(0, 300)}`);
  const action = attribute(form[1], 'action');
  if (!action) throw new LoginError(`form without action on ${pageUrl.pathname}`);
  const fields = {};
  for (const [input] of form[2].matchAll(/<input\b[^>]*>/gi)) {
    const name = attribute(input, 'name');
    if (!name) continue;
    if (name === 'login') fields[name] = user;
    else if (name === 'password') fields[name] = password;
    else fields[name] = attribute(input, 'value') ?? '';
  }
  return { action: new URL(action, pageUrl), fields };
}

async function main() {
  const { values } = parseArgs({
    options: {
      issuer: { type: 'string' },
      client: { type: 'string' },
      secret: { type: 'string' },
      user: { type: 'string' },
      password: { type: 'string', default: 'any-password' },
      scope: { type: 'string', default: 'openid offline_access leads.read leads.write' },
      auth: { type: 'string' },
      'redirect-uri': { type: 'string' },
    },
    strict: true,
  });
  const secret = values.secret ?? process.env.LK_TEST_CLIENT_SECRET;
  for (const [name, value] of Object.entries({ ...values, secret })) {
    if (['issuer', 'client', 'secret', 'user'].includes(name) && !value) {
      throw new LoginError(`--${name} is required`);
    }
  }
  const issuer = values.issuer.replace(/\/$/, '');
  const auth = values.auth ?? (values.client.endsWith('-post') ? 'post' : 'basic');
  if (!['basic', 'post'].includes(auth)) throw new LoginError('--auth must be basic or post');
  const redirectUri = values['redirect-uri'] ?? `${issuer}/cb`;

  const discoveryResponse = await fetch(`${issuer}/.well-known/openid-configuration`);
  if (!discoveryResponse.ok) {
    throw new LoginError(`discovery failed: HTTP ${discoveryResponse.status}`);
  }
  const discovery = await discoveryResponse.json();

  const verifier = base64url(crypto.randomBytes(32));
  const state = base64url(crypto.randomBytes(16));
  const authorizationUrl = new URL(discovery.authorization_endpoint);
  for (const [key, value] of Object.entries({
    response_type: 'code',
    client_id: values.client,
    redirect_uri: redirectUri,
    scope: values.scope,
    state,
    nonce: base64url(crypto.randomBytes(16)),
    prompt: 'consent', // without it oidc-provider drops offline_access (OpenID Connect §11)
    code_challenge: base64url(crypto.createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
  })) {
    authorizationUrl.searchParams.set(key, value);
  }

  // Follow redirects and submit forms until the authorization server redirects to
  // redirect_uri, which is never fetched.
  let url = authorizationUrl;
  let response = await send(url);
  let callback;
  for (let step = 0; step < MAX_STEPS && !callback; step += 1) {
    if (response.status >= 300 && response.status < 400) {
      const location = response.headers.get('location');
      if (!location) throw new LoginError(`HTTP ${response.status} without Location`);
      const next = new URL(location, url);
      if (`${next.origin}${next.pathname}` === redirectUri) {
        callback = next;
      } else {
        url = next;
        response = await send(url);
      }
    } else if (response.status === 200) {
      const page = fillForm(await response.text(), url, values.user, values.password);
      url = page.action;
      response = await send(url, { method: 'POST', form: page.fields });
    } else {
      const text = (await response.text()).replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ');
      throw new LoginError(`HTTP ${response.status} at ${url.pathname}: ${text.slice(0, 500)}`);
    }
  }
  if (!callback) throw new LoginError(`no redirect to ${redirectUri} after ${MAX_STEPS} steps`);

  const params = callback.searchParams;
  if (params.has('error')) {
    throw new LoginError(`authorization failed: ${params.get('error')}: `
      + `${params.get('error_description') ?? ''}`);
  }
  if (params.get('state') !== state) throw new LoginError('state mismatch in the callback');
  if (params.has('iss') && params.get('iss') !== discovery.issuer) {
    throw new LoginError('iss mismatch in the callback'); // RFC 9207
  }
  const code = params.get('code');
  if (!code) throw new LoginError('callback without a code');

  const form = {
    grant_type: 'authorization_code',
    code,
    redirect_uri: redirectUri,
    code_verifier: verifier,
  };
  const headers = {
    Accept: 'application/json',
    'Content-Type': 'application/x-www-form-urlencoded',
  };
  if (auth === 'basic') {
    const pair = `${formEncode(values.client)}:${formEncode(secret)}`;
    headers.Authorization = `Basic ${Buffer.from(pair).toString('base64')}`;
  } else {
    form.client_id = values.client;
    form.client_secret = secret;
  }
  const tokenResponse = await fetch(discovery.token_endpoint, {
    method: 'POST',
    headers,
    body: new URLSearchParams(form).toString(),
  });
  const text = await tokenResponse.text();
  let tokens;
  try {
    tokens = JSON.parse(text);
  } catch {
    throw new LoginError(`token endpoint: HTTP ${tokenResponse.status}, non-JSON body`);
  }
  if (!tokenResponse.ok || typeof tokens.access_token !== 'string') {
    // An error body carries no token, so it is safe to show.
    throw new LoginError(`token endpoint: HTTP ${tokenResponse.status}: ${text}`);
  }
  if (values.scope.split(' ').includes('offline_access') && !tokens.refresh_token) {
    throw new LoginError('offline_access was requested but no refresh_token was issued');
  }
  process.stdout.write(`${JSON.stringify(tokens)}\n`);
}

main().catch((err) => {
  if (err instanceof LoginError || err.code?.startsWith('ERR_PARSE_ARGS')) die(err.message);
  // e.g. "fetch failed" with "connect ECONNREFUSED ..." as its cause
  die(err.cause ? `${err.message}: ${err.cause.message ?? err.cause}` : err.stack);
});
