// Package auth is healthhub's SMART-on-FHIR backend-services
// authorization: discovery (.well-known/smart-configuration), the token
// endpoint (client credentials with a signed JWT assertion), introspection,
// the client registry, the server's signing keys, access-token checks on
// every FHIR request, and SMART scopes v1 and v2.
//
// # What it owns
//
// Client records, signing keys and the replay cache of assertion ids live in
// the store's auth buckets (store.AuthStore); this package owns what they
// mean. It does not know FHIR resources: a scope names a type by syntax
// only, and the REST layer asks Principal.Allows with the type and the
// permission its route needs.
//
// # Guarantees
//
//   - Deny by default: no token, a token that does not verify, an unknown or
//     disabled client, a scope not granted — no access.
//   - Assertions: RS384, ES384, RS256 or ES256 only (never none or HS*), the
//     key picked by kid among the client's keys that fit alg, iss = sub =
//     client id, aud = the token endpoint, exp at most five minutes ahead,
//     each jti once (the replay cache is in the database, so it survives a
//     restart).
//   - Granted scopes are the requested ones narrowed to the client's allowed
//     ones. Only system/ scopes are granted: patient/ and user/ scopes and
//     v2 query-constrained scopes are refused with invalid_scope, never
//     widened.
//   - Access tokens are ES256 JWTs of the server's own key; a rotated key
//     keeps verifying for MaxTokenLifetime.
//   - Tokens and assertions are never logged; the client id is.
//
// # Caveats
//
// The signing keys are stored unencrypted in the database file: protect the
// data directory. The client registry is cached in memory and is written
// only by the running server or, with the server stopped, by the CLI.
package auth
