// A real OpenID provider for the SSO tests: oidc-provider with one confidential client, the
// accounts of a JSON file and oidc-provider's own development login and consent pages.
//
//   node provider.mjs PORT        (or OIDC_PORT=PORT node provider.mjs)
//
// Environment:
//   OIDC_CLIENT_SECRET   secret of the client "registry-gateway" (required)
//   OIDC_REDIRECT_URIS   space- or comma-separated redirect URIs (default
//                        http://127.0.0.1/ui/sso/callback: the client is "native", so a loopback
//                        redirect URI matches on any port, RFC 8252 7.3)
//   OIDC_ACCOUNTS_FILE   JSON {"ACCOUNT_ID": {"preferred_username": ..., "groups": [...], ...}}
//                        (required). ACCOUNT_ID is the `sub`, and what the login form takes.
//   OIDC_CLIENT_AUTH     the client's token endpoint auth method, and the only one discovery
//                        advertises (default client_secret_basic; or client_secret_post)
//
// The login page is oidc-provider's development form (fields `login`, `password`, button
// "Sign-in"): `login` takes an account id of the file, and `password` must equal the account's
// "password" entry (never a claim) when it has one. A wrong login shows the form again. The
// consent page has one button, "Continue". Cookies and signing keys are new at each start.
import { generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse as parseQuery } from 'node:querystring';

import Provider from 'oidc-provider';

const port = Number(process.argv[2] ?? process.env.OIDC_PORT);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node provider.mjs PORT (or OIDC_PORT)');
  process.exit(2);
}
const clientSecret = process.env.OIDC_CLIENT_SECRET;
const accountsFile = process.env.OIDC_ACCOUNTS_FILE;
if (!clientSecret || !accountsFile) {
  console.error('OIDC_CLIENT_SECRET and OIDC_ACCOUNTS_FILE must be set');
  process.exit(2);
}
const redirectUris = (process.env.OIDC_REDIRECT_URIS ?? 'http://127.0.0.1/ui/sso/callback')
  .split(/[\s,]+/).filter(Boolean);
const accounts = JSON.parse(readFileSync(accountsFile, 'utf8'));
const clientAuth = process.env.OIDC_CLIENT_AUTH ?? 'client_secret_basic';
const issuer = `http://127.0.0.1:${port}`;

function signingKey() {
  // Our own key rather than oidc-provider's built-in development key, which is public.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };
}

async function findAccount(ctx, id) {
  if (!Object.hasOwn(accounts, id)) return undefined;
  const { password, ...profile } = accounts[id];
  return {
    accountId: id,
    // oidc-provider filters these by the granted scopes and claims.
    async claims() { return { ...profile, sub: id }; },
  };
}

const configuration = {
  clients: [{
    client_id: 'registry-gateway',
    client_secret: clientSecret,
    application_type: 'native',
    redirect_uris: redirectUris,
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: clientAuth,
  }],
  clientAuthMethods: [clientAuth],
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  // Scope claims go in the ID token too, not only at the userinfo endpoint.
  conformIdTokenClaims: false,
  findAccount,
  jwks: { keys: [signingKey()] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  features: { devInteractions: { enabled: true } },
  ttl: { IdToken: 300, AccessToken: 300, AuthorizationCode: 60, Interaction: 600, Session: 3600, Grant: 3600 },
};

function loginAccepted(form) {
  if (typeof form.login !== 'string' || !Object.hasOwn(accounts, form.login)) return false;
  const want = accounts[form.login].password;
  if (want === undefined) return true;
  const got = Buffer.from(String(form.password ?? '')), expected = Buffer.from(String(want));
  return got.length === expected.length && timingSafeEqual(got, expected);
}

// The dev login form takes any login (and an unknown account then fails with a 500 later):
// check it here first, and hand the body on to oidc-provider, which reads req.body.
async function checkLogin(ctx, next) {
  const match = ctx.method === 'POST' && /^\/interaction\/([^/]+)$/.exec(ctx.path);
  if (match) {
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    ctx.req.body = Buffer.concat(chunks).toString('utf8');
    const form = parseQuery(ctx.req.body);
    if (form.prompt === 'login' && !loginAccepted(form)) {
      console.log(`login refused for ${JSON.stringify(String(form.login ?? ''))}`);
      ctx.status = 303;
      ctx.redirect(`/interaction/${match[1]}`);
      return;
    }
  }
  await next();
}

const provider = new Provider(issuer, configuration);
provider.use(checkLogin);
provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.on('authorization.error', (ctx, err) => console.error('authorization.error', err.message));
provider.on('grant.error', (ctx, err) => console.error('grant.error', err.message));
const server = provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider ${issuer} ready`));
server.on('error', (err) => { console.error(`listen: ${err.message}`); process.exit(1); });
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
