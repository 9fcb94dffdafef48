// A real OpenID provider for tests/test_sso.py: panva's certified oidc-provider on loopback.
//
//   node provider.mjs PORT CONFIG_JSON
//
// CONFIG_JSON names one static client {client_id, client_secret, redirect_uris} and the accounts
// {id: {email, email_verified, preferred_username, groups}}. The issuer is http://127.0.0.1:PORT.
//
// Only the sign-in page is the test's own: instead of a form, /interaction/:uid signs in the account named by
// the standard login_hint parameter and grants the scopes the client asked for, so a test plays the browser
// with plain HTTP requests. Everything else (discovery, authorization, PKCE, token, userinfo, JWKS, RS256
// ID tokens) is the library's.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const [port, configPath] = process.argv.slice(2);
const config = JSON.parse(readFileSync(configPath, 'utf8'));

// A fresh RSA key per run: the app must fetch it from the JWKS endpoint to check the ID token's signature.
const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      ...config.client,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
  ],
  jwks: { keys: [{ ...signingKey, kid: 'test-signing-key', alg: 'RS256', use: 'sig' }] },
  cookies: { keys: ['test-only-cookie-key'] },
  // Groups travel with the profile scope here, as many providers' group mappers send them.
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name', 'groups'],
  },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    const claims = config.accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...claims }; } };
  },
});

provider.use(async (ctx, next) => {
  if (!ctx.path.startsWith('/interaction/')) return next();
  const { prompt, params, session, grantId } = await provider.interactionDetails(ctx.req, ctx.res);
  let result;
  if (prompt.name === 'login') {
    result = config.accounts[params.login_hint]
      ? { login: { accountId: params.login_hint } }
      : { error: 'access_denied', error_description: 'no such test account' };
  } else {
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const { missingOIDCScope, missingOIDCClaims } = prompt.details;
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    result = { consent: { grantId: await grant.save() } };
  }
  ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false }));
});

provider.listen(Number(port), '127.0.0.1');
