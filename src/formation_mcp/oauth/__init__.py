"""The OAuth 2.1 authorization server for MCP hosts, on the server's HTTP side (through Envoy):
RFC 8414 metadata, the authorization code flow with PKCE (S256) approved with the user's key
(`fmcp authorize CODE`), client registration (Client ID Metadata Documents and RFC 7591),
resource indicators (RFC 8707), refresh and revocation (RFC 7009).

The modules: `params` (reading requests strictly), `page` (the sign-in page), `metadata` (the
discovery documents), `authorize` (the browser's endpoints), `token` (the client's endpoints:
token, registration, revocation) and `server` (the routes). The rules and the state live in
`formation_mcp.auth` (`authorizations`, `oauth_tokens`, `oauth_clients`, `grants`).
"""
