"""The web console on the server's HTTP side: its static pages under /console/, the sign-in
link's exchange and sign-out. Its calls to the REST API go through Envoy's /console/api/
prefix with the session cookie (formation_mcp.auth.console_sessions)."""
