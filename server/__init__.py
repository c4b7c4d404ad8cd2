"""The standalone vecstore server: gRPC servicers over an embedded database, with auth, health,
reflection, metrics and graceful shutdown."""
