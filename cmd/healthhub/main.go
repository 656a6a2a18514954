// Command healthhub is a FHIR R4 server for a regional health information
// exchange. See README.md, or run healthhub help.
package main

import (
	"os"

	"healthhub/cmd/healthhub/app"
)

func main() {
	os.Exit(app.Main(os.Args[1:], os.Stdout, os.Stderr))
}
