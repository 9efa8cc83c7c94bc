#!/usr/bin/env bash
# Prints the `pveum` commands that give lxc-operator a least-privilege Proxmox VE identity: a
# user, a privilege-separated API token, and roles granted on exactly the paths the operator's
# client uses. Review the output, then run it as root on one node of the cluster; the token's
# secret is printed once by `pveum user token add` — put it in the ProxmoxNode's Secret
# (`tokenId: <user>!<token>`, `tokenSecret: <secret>`).
#
#   infra/proxmox-role.sh [user] [token]        (defaults: lxc-operator@pve operator)
#
# The privileges are those pve-sim checks on the calls the operator makes (infra/pve-sim routes),
# and tests/proxmox_role.rs runs a container through create, resize, power, migration and
# deletion with a token holding exactly what this script grants. Not granted: VM.Snapshot and
# VM.Config.CDROM/Cloudinit/HWType (never used for containers), Sys.Modify (root-only feature
# flags, privileged containers and bind mounts need root@pam tickets anyway).
set -euo pipefail

user=${1:-lxc-operator@pve}
token=${2:-operator}

# role | privileges | path | propagate
grants=(
  "LxcOperatorVMs|VM.Allocate VM.Audit VM.PowerMgmt VM.Migrate VM.Config.CPU VM.Config.Memory VM.Config.Disk VM.Config.Network VM.Config.Options|/vms|1"
  "LxcOperatorStorage|Datastore.AllocateSpace Datastore.AllocateTemplate Datastore.Audit|/storage|1"
  "LxcOperatorNodes|Sys.Audit|/nodes|1"
  "LxcOperatorCluster|Sys.Audit|/|0"
  "LxcOperatorSDN|SDN.Use|/sdn|1"
)

echo "# lxc-operator: user $user, token $user!$token"
echo "pveum user add $user --comment 'lxc-operator (Kubernetes)'"
for grant in "${grants[@]}"; do
  IFS='|' read -r role privs path propagate <<<"$grant"
  echo "pveum role add $role --privs '${privs// /,}'"
done
echo "pveum user token add $user $token --privsep 1 --comment 'lxc-operator'"
# A privilege-separated token holds what both the user and the token are granted.
for grant in "${grants[@]}"; do
  IFS='|' read -r role privs path propagate <<<"$grant"
  echo "pveum acl modify $path --roles $role --users $user --propagate $propagate"
  echo "pveum acl modify $path --roles $role --tokens '$user!$token' --propagate $propagate"
done
