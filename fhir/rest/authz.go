package rest

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"healthhub/auth"
	"healthhub/fhir"
)

// authOffWarning is sent on every response of a server run with --auth=off.
const authOffWarning = `199 healthhub "authentication is off: every request runs as an all-powerful local principal"`

// authorized authenticates the request and checks the scope its route
// needs (auth.PermFor of the route's interaction code, on the type in the
// path) before next runs. The CapabilityStatement is public.
func (h *Handlers) authorized(code string, next gin.HandlerFunc) gin.HandlerFunc {
	if code == "capabilities" {
		return next
	}
	perm, allTypes, known := auth.PermFor(code)
	return func(c *gin.Context) {
		var p auth.Principal
		var err error
		if h.auth == nil {
			p, err = auth.WithRequestHeaders(auth.Local(), c.Request)
		} else {
			p, err = h.auth.Authenticate(c.Request)
		}
		if err != nil {
			var te *auth.TokenError
			if errors.As(err, &te) {
				c.Header("WWW-Authenticate", te.Challenge())
				h.writeOutcome(c, http.StatusUnauthorized, issue("login", te.Description))
				return
			}
			h.writeError(c, fhir.Errorf(fhir.Invalid, "value", "%s", err.Error()))
			return
		}
		typ := c.Param("type")
		if allTypes {
			typ = "*"
		}
		switch {
		case !known && !p.Unrestricted:
			h.writeOutcome(c, http.StatusForbidden, issue("forbidden", "no scope grants the "+code+" interaction"))
			return
		case perm != 0 && !p.Allows(typ, perm):
			// RFC 6750 3.1: the challenge names the scope wanted (SMART v2 form).
			c.Header("WWW-Authenticate", `Bearer realm="healthhub", error="insufficient_scope", scope="`+auth.Scope{Context: "system", Type: typ, Perms: perm}.String()+`"`)
			h.writeOutcome(c, http.StatusForbidden, issue("forbidden", "this request needs scope "+auth.Needed(typ, perm)))
			return
		}
		st := state(c)
		st.principal, st.authorized = p, true
		next(c)
	}
}

// principal is the caller authorized set; the local principal only when
// auth is off (a route without authorized never reaches a service).
func (h *Handlers) principal(c *gin.Context) auth.Principal {
	if st := state(c); st.authorized {
		return st.principal
	}
	if h.auth == nil {
		return auth.Local()
	}
	return auth.Principal{} // no scopes: Allows refuses everything
}
