"""The Model Context Protocol face of the control plane.

MCP hosts (agents, IDEs) list and call our tools over stdio (`fmcp mcp`) or Streamable HTTP
(`/mcp` on the server's HTTP side, through Envoy). Either way the MCP server is a gRPC client of
our own Tools and Operations services with the caller's token, so authentication, ownership,
validation and audit are exactly those of the gRPC and REST APIs.
"""
