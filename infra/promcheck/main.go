// promcheck reads a Prometheus text exposition (format 0.0.4) on standard input, parses it
// with Prometheus' own text parser (github.com/prometheus/common/expfmt) and lints it with
// promlint (client_golang's naming and help conventions). It prints one line per family,
// "<name> <type> <samples>", and each problem on standard error; it exits 1 on a parse error
// or any lint problem. Built and cached by infra/test-world/bootstrap.sh for tests/metrics.rs.
package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func main() {
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(bufio.NewReader(os.Stdin))
	if err != nil {
		fmt.Fprintln(os.Stderr, "parse:", err)
		os.Exit(1)
	}
	list := make([]*dto.MetricFamily, 0, len(families))
	for _, f := range families {
		list = append(list, f)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].GetName() < list[j].GetName() })
	for _, f := range list {
		fmt.Printf("%s %s %d\n", f.GetName(), f.GetType().String(), len(f.GetMetric()))
	}
	problems, err := promlint.NewWithMetricFamilies(list).Lint()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lint:", err)
		os.Exit(1)
	}
	for _, p := range problems {
		fmt.Fprintf(os.Stderr, "lint: %s: %s\n", p.Metric, p.Text)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
}
