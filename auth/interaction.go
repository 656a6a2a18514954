package auth

// PermFor maps a FHIR interaction code (as the CapabilityStatement spells
// it) to the SMART permission it needs, following SMART v2: r for read,
// vread and instance history; s for type and system search and history; c
// create; u update and patch; d delete. allTypes: the interaction spans
// every type (system search and history), so only a wildcard scope
// covers it. ok false: there is no rule, and only an unrestricted
// principal may go on (deny by default: a new interaction adds its line
// here).
//
// transaction and batch have no permission of their own (perm 0, ok true):
// the bundle code checks each entry with Allows, using PermFor of the
// entry's interaction.
func PermFor(interaction string) (perm Perm, allTypes, ok bool) {
	switch interaction {
	case "read", "vread", "history-instance":
		return PermRead, false, true
	case "search-type", "history-type":
		return PermSearch, false, true
	case "search-system", "history-system":
		return PermSearch, true, true
	case "create":
		return PermCreate, false, true
	case "update", "patch":
		return PermUpdate, false, true
	case "delete":
		return PermDelete, false, true
	case "transaction", "batch":
		return 0, false, true
	case "everything":
		// Patient/$everything needs read on Patient; every resource it
		// returns is checked against the scopes again, one by one.
		return PermRead, false, true
	}
	return 0, false, false
}
