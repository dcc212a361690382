"""gRPC transport of the relay: strict proto conversions (convert), authentication and limits
(auth), the server (server) and the peer link (client)."""
