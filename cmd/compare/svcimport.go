package main

import "fmt"

// The service-import row: account SVC exports the service svcExported, account CLI imports
// it as svcImported; the publisher logs in to CLI, the subscriber to SVC, so every message
// crosses the import (a subject mapping and a change of account) on its way. Both servers
// load the same file.
const (
	svcImportConfFile = "svcimport.conf"
	svcExported       = "bench.svc.exported"
	svcImported       = "bench.svc.imported"
	svcUser           = "svc"
	cliUser           = "cli"
)

func svcImportConfig() *serverConfig {
	return &serverConfig{file: svcImportConfFile, check: checkSvcImport, text: fmt.Sprintf(`accounts {
  SVC {
    users: [ {user: %s, password: %s} ]
    exports: [ {service: %q} ]
  }
  CLI {
    users: [ {user: %s, password: %s} ]
    imports: [ {service: {account: SVC, subject: %q}, to: %q} ]
  }
}
`, svcUser, svcUser, svcExported, cliUser, cliUser, svcExported, svcImported)}
}

// checkSvcImport fails unless the server refuses a client without credentials: the file
// was loaded.
func checkSvcImport(addr string) error { return refusesAnonymous(addr, svcImportConfFile) }
