#!/usr/bin/env bash
# Turn on MFA delete for the Custody evidence bucket — a ROOT USER runbook step.
#
# Why root: S3 lets only the bucket owner's root user enable MFA delete, only through the API,
# with the root MFA device's current code; CloudFormation/CDK cannot do it. S3 also refuses
# lifecycle rules on an MFA-delete bucket, which is why only the evidence bucket (no lifecycle)
# gets it, never the lake (../../../shared/reference/aws-sources.md, "S3 Object Lock and MFA Delete").
#
# How: sign in to the console as the root user of the security account, with MFA; open
# CloudShell in the bucket's region; upload this file; run
#
#   bash enable-mfa-delete.sh custody-evidence-<account>-<region> arn:aws:iam::<account>:mfa/root-account-mfa-device 123456
#
# (no root access key is needed, and the security account's SCP forbids creating one).
# Add --dry-run to print the calls without making them. Exit status: 0 on, 1 failed, 2 bad use.
set -euo pipefail

usage() {
  echo "Usage: $0 BUCKET ROOT_MFA_DEVICE_ARN MFA_CODE [--dry-run]" >&2
  echo "  e.g. $0 custody-evidence-111111111111-eu-west-1 arn:aws:iam::111111111111:mfa/root-account-mfa-device 123456" >&2
  exit 2
}

dry_run=0
positional=()
for a in "$@"; do
  case "$a" in
    --dry-run) dry_run=1 ;;
    -h|--help) usage ;;
    -*) echo "Unknown option $a." >&2; usage ;;
    *) positional+=("$a") ;;
  esac
done
[ "${#positional[@]}" -eq 3 ] || usage
bucket="${positional[0]}"
serial="${positional[1]}"
code="${positional[2]}"

if ! [[ "$bucket" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]]; then
  echo "\"$bucket\" is not an S3 bucket name." >&2; exit 2
fi
if ! [[ "$serial" =~ ^arn:aws[a-z-]*:iam::[0-9]{12}:mfa/.+$ ]]; then
  echo "\"$serial\" is not an MFA device ARN (arn:aws:iam::<account>:mfa/<name>; find it under the root user's Security credentials)." >&2; exit 2
fi
if ! [[ "$code" =~ ^[0-9]{6}$ ]]; then
  echo "The MFA code must be the 6 digits your root MFA device shows now." >&2; exit 2
fi
command -v aws >/dev/null 2>&1 || { echo "The AWS CLI (aws) is not installed here; use CloudShell." >&2; exit 2; }

run() {
  if [ "$dry_run" -eq 1 ]; then printf 'would run: aws'; printf ' %q' "$@"; printf '\n'; else aws "$@"; fi
}

caller="$(aws sts get-caller-identity --query Arn --output text)"
case "$caller" in
  arn:aws*:iam::*:root) ;;
  *)
    echo "You are $caller, not the root user. Only the root user can enable MFA delete: sign in as root (with MFA) and run this in CloudShell." >&2
    exit 2 ;;
esac
account="${caller#*::}"; account="${account%%:*}"
case "$serial" in
  *":$account:"*) ;;
  *) echo "The MFA device $serial belongs to another account than $account; use the root user's own device." >&2; exit 2 ;;
esac

echo "Enabling MFA delete on $bucket (account $account)…"
run s3api put-bucket-versioning --bucket "$bucket" \
  --versioning-configuration Status=Enabled,MFADelete=Enabled \
  --mfa "$serial $code"

[ "$dry_run" -eq 1 ] && exit 0

# The check: the same rule as packages/aws/src/mfa-delete.ts (checkMfaDelete), kept in shell so
# that this script runs alone in CloudShell.
status="$(aws s3api get-bucket-versioning --bucket "$bucket" --query Status --output text)"
mfa="$(aws s3api get-bucket-versioning --bucket "$bucket" --query MFADelete --output text)"
if [ "$status" = "Enabled" ] && [ "$mfa" = "Enabled" ]; then
  echo "MFA delete is on for $bucket: deleting an object version or changing versioning needs the root user's MFA code."
  echo "Now sign out of the root user. Auditors can re-check at any time: aws s3api get-bucket-versioning --bucket $bucket"
  exit 0
fi
echo "MFA delete is still off for $bucket (versioning: $status, MFA delete: $mfa). Check the MFA code was current and try again." >&2
exit 1
