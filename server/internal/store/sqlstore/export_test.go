package sqlstore

// CVEQueries are the queries behind Store.CVE, for plan_test.go.
var CVEQueries = map[string]string{"status": cveStatusQuery, "findings": cveFindingsQuery, "devices": cveDevicesQuery}
