//! Tests against a real kube-apiserver + etcd (one control plane for this test binary):
//! the CRDs, the examples, schema validation, and RBAC.

mod crds;
mod examples;
mod rbac;
mod support;
mod validation;
