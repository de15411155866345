"""Entra ID emulator: OpenID discovery, rotating JWKS, token endpoint, sign-in page, logout.

Endpoints (`{tenant}` is a tenant id, its domain, or `common` / `organizations` for sign-in):
- `GET /{tenant}/v2.0/.well-known/openid-configuration` (v2) and `GET /{tenant}/.well-known/openid-configuration`
  (v1 issuer; its endpoints are the v2 ones, the only ones implemented);
- `GET /{tenant}/discovery/v2.0/keys` (also `/{tenant}/discovery/keys`): every published signing key;
- `POST /{tenant}/oauth2/v2.0/token`: client_credentials (client_secret or a certificate client_assertion,
  RS256/x5t or PS256/x5t#S256), authorization_code with PKCE S256, refresh_token;
- `GET|POST /{tenant}/oauth2/v2.0/authorize` (HTML sign-in page), `GET /{tenant}/oauth2/v2.0/logout`.

Issuers: v2 `{authority_url}/{tid}/v2.0` (Azure: login.microsoftonline.com), v1 `https://sts.windows.net/{tid}/`
(Azure's own). Tokens for Microsoft resources (Marketplace 20e940b3-..., ARM, Key Vault, Storage) are v1
like Azure's; tokens for our app registrations are v2. Clock skew tolerated by `verify_access_token`: 30 s.

Client options the app needs, and nothing else differs from production:

- azure-identity (`ClientSecretCredential`, `CertificateCredential`)::

      ClientSecretCredential(tenant_id, client_id, secret,
                             authority=<authority_url>,              # e.g. "https://127.0.0.1:PORT"
                             disable_instance_discovery=True,         # the host is not a Microsoft cloud
                             connection_verify=<ca_bundle path>)      # trust the emulator CA

  Close credentials (`with`) when done: an idle TLS keep-alive connection delays the emulator's shutdown.
- msal (`ConfidentialClientApplication`)::

      session = requests.Session(); session.verify = <ca_bundle path>
      session.trust_env = False   # else REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE in the environment override verify
      ConfidentialClientApplication(client_id, client_credential=secret_or_cert_dict,
                                    authority=f"{authority_url}/{tenant id | 'organizations'}",
                                    instance_discovery=False, http_client=session)

  `initiate_auth_code_flow(scopes, redirect_uri=...)` / `acquire_token_by_auth_code_flow(flow, query)` work
  unchanged (PKCE S256 and nonce included); redirect URIs on loopback hosts match any port.

Control API (under `/_emulator`): `GET directory`, `GET keys`, `POST keys/rotate`, `POST keys/retire`,
`POST apps/{app_id}/certificates` `{"certificate_pem"}` (valid for the certificate's own validity period),
`DELETE apps/{app_id}/certificates/{sha1 or sha256 thumbprint}`, `POST apps/{app_id}/redirect-uris` `{"redirect_uri"}`,
`PUT|DELETE tenants/{tenant_id}/consents/{app_id}`, `POST tokens` (mint_access_token arguments),
`POST tokens/marketplace-webhook`, and the fault rules under `faults`.
"""

from emulators.entra.emulator import MARKETPLACE_APP_ID, EntraEmulator
from emulators.entra.tokens import InvalidTokenError

__all__ = ["MARKETPLACE_APP_ID", "EntraEmulator", "InvalidTokenError"]
