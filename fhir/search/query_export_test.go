package search

// White-box hook for the black-box query tests (query_test.go): no R4
// parameter of SearchTypes has type number, so the tests add one.

// AddParamForTest adds p to the parameters of typ in r.
func AddParamForTest(r *Registry, typ string, p *Param) { r.byType[typ][p.Code] = p }
