// kstatus-check prints the kstatus result of Kubernetes objects, as Flux's health checks compute
// it (sigs.k8s.io/cli-utils/pkg/kstatus/status): it reads a JSON array of objects on standard
// input and prints one line per object: "<status> <message>".
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	var objects []json.RawMessage
	if err := json.NewDecoder(os.Stdin).Decode(&objects); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus-check: read objects:", err)
		os.Exit(2)
	}
	for _, raw := range objects {
		// The API machinery's decoder, so integers stay int64 as kstatus expects.
		var object unstructured.Unstructured
		if err := object.UnmarshalJSON(raw); err != nil {
			fmt.Fprintln(os.Stderr, "kstatus-check: decode object:", err)
			os.Exit(2)
		}
		result, err := status.Compute(&object)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kstatus-check:", err)
			os.Exit(1)
		}
		fmt.Printf("%s %s\n", result.Status, result.Message)
	}
}
