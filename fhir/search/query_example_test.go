package search_test

import (
	"fmt"
	"net/url"

	"healthhub/fhir/search"
)

func ExampleParseQuery() {
	reg, err := search.Load()
	if err != nil {
		panic(err)
	}
	values, _ := url.ParseQuery("patient.identifier=http://hospital-a.org/mrn|12345&date=ge2024-01&code=http://loinc.org|8480-6,http://loinc.org|8462-4&_sort=-date&_count=50&foo=bar")
	q, err := search.ParseQuery(reg, "Observation", values, false)
	if err != nil {
		fmt.Println(err) // a *fhir.Error: 400 with an OperationOutcome naming the parameter and value
		return
	}
	for _, c := range q.Conditions {
		fmt.Printf("%s: %d alternative(s), first %s\n", c.Key(), len(c.Operands), c.Value())
	}
	for _, c := range q.Chains {
		fmt.Printf("chain %s through %s\n", c.Key(), c.Steps[0].Type)
	}
	fmt.Println("sort:", q.Sort[0].Param.Code, "descending:", q.Sort[0].Descending, "count:", q.Count)
	fmt.Println("ignored:", q.Ignored)
	fmt.Println("self:", q.SelfParams.Encode())
	// Output:
	// code: 2 alternative(s), first http://loinc.org|8480-6,http://loinc.org|8462-4
	// date: 1 alternative(s), first ge2024-01
	// chain patient:Patient.identifier through Patient
	// sort: date descending: true count: 50
	// ignored: [foo]
	// self: _count=50&_sort=-date&code=http%3A%2F%2Floinc.org%7C8480-6%2Chttp%3A%2F%2Floinc.org%7C8462-4&date=ge2024-01&patient%3APatient.identifier=http%3A%2F%2Fhospital-a.org%2Fmrn%7C12345
}
