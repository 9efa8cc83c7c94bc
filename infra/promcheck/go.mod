// Tools module: promcheck, Prometheus' own text parser and promlint, for tests/metrics.rs
// (built and cached by infra/test-world/bootstrap.sh).
module github.com/infrahaus/lxc-operator/infra/promcheck

go 1.25.0

require (
	github.com/prometheus/client_golang v1.23.2
	github.com/prometheus/client_model v0.6.2
	github.com/prometheus/common v0.66.1
)

require (
	github.com/kr/text v0.2.0 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	go.yaml.in/yaml/v2 v2.4.2 // indirect
	google.golang.org/protobuf v1.36.8 // indirect
)
