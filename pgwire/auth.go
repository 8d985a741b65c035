package pgwire

import (
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/raftsql/raftsql/auth"
)

// authUsers runs the SASL exchange of the startup phase, as PostgreSQL
// does for password_encryption = scram-sha-256, with package auth's
// SCRAMServer and users (Config.AuthUsers):
//
//	AuthenticationSASL{SCRAM-SHA-256} → SASLInitialResponse
//	AuthenticationSASLContinue        → SASLResponse
//	AuthenticationSASLFinal           (AuthenticationOk follows in acceptStartup)
//
// It returns false after sending the client a FATAL error: 28P01 for a
// wrong password or unknown user (indistinguishable), 08P01 for anything
// malformed. The startup deadline bounds the whole exchange.
func (c *conn) authUsers() bool {
	s := auth.NewSCRAMServer(c.srv.cfg.AuthUsers, c.user, c.srv.cfg.Rand)
	defer c.be.SetAuthType(pgproto3.AuthTypeOk) // 'p' is no auth message any more
	c.be.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{auth.Mechanism}})
	if err := c.be.Flush(); err != nil {
		return false
	}
	_ = c.be.SetAuthType(pgproto3.AuthTypeSASL)
	msg, err := c.be.Receive()
	if err != nil {
		c.receiveError(err)
		return false
	}
	init, ok := msg.(*pgproto3.SASLInitialResponse)
	if !ok {
		c.fatal(newError(codeProtocolViolation, ErrProtocol, "expected SASL response, got message type %T", msg))
		return false
	}
	if init.AuthMechanism != auth.Mechanism {
		c.fatal(newError(codeProtocolViolation, ErrProtocol, "client selected an invalid SASL authentication mechanism %q", init.AuthMechanism))
		return false
	}
	serverFirst, err := s.ClientFirst(init.Data)
	if err != nil {
		return c.authUsersFailed(s, err)
	}
	c.be.Send(&pgproto3.AuthenticationSASLContinue{Data: serverFirst})
	if err := c.be.Flush(); err != nil {
		return false
	}
	_ = c.be.SetAuthType(pgproto3.AuthTypeSASLContinue)
	if msg, err = c.be.Receive(); err != nil {
		c.receiveError(err)
		return false
	}
	resp, ok := msg.(*pgproto3.SASLResponse)
	if !ok {
		c.fatal(newError(codeProtocolViolation, ErrProtocol, "expected SASL response, got message type %T", msg))
		return false
	}
	serverFinal, err := s.ClientFinal(resp.Data)
	if err != nil {
		return c.authUsersFailed(s, err)
	}
	c.be.Send(&pgproto3.AuthenticationSASLFinal{Data: serverFinal})
	c.log.Debug("pgwire: authenticated", "user", c.user)
	return true
}

func (c *conn) authUsersFailed(s *auth.SCRAMServer, err error) bool {
	c.log.Info("pgwire: authentication failed", "user", c.user, "reason", s.Detail())
	c.fatal(err)
	return false
}
