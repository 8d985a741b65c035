package pgwire

// DisableRecover makes connection goroutines let panics through, so that
// tests and fuzzing see them instead of a logged, closed connection.
func DisableRecover(s *Server) { s.noRecover = true }
