/**
 * Is MFA delete on? Reads what `aws s3api get-bucket-versioning --bucket B` prints (the
 * GetBucketVersioning answer: `{"Status": "Enabled", "MFADelete": "Enabled"}`; `{}` for a bucket
 * whose versioning was never turned on) and says, in plain words, what it means.
 *
 * MFA delete can only be turned on by the root user through the API (CloudFormation cannot), and
 * S3 refuses lifecycle rules on an MFA-delete bucket — hence the separate evidence bucket
 * (../../../shared/reference/aws-sources.md, "S3 Object Lock and MFA Delete").
 */

export interface MfaDeleteReport {
  bucket: string | null;
  versioning: 'Enabled' | 'Suspended' | 'NeverEnabled';
  mfaDelete: 'Enabled' | 'Disabled';
  /** True only when versioning and MFA delete are both on. */
  ok: boolean;
  message: string;
}

export class MfaDeleteInputError extends Error {
  readonly code = 'MFA_DELETE_INPUT';
}

/** Check the JSON text (or the parsed value) of a GetBucketVersioning answer. */
export function checkMfaDelete(input: string | unknown, bucket: string | null = null): MfaDeleteReport {
  let v: unknown = input;
  if (typeof input === 'string') {
    const text = input.trim();
    if (text === '') {
      // `aws s3api get-bucket-versioning` prints nothing for a bucket whose versioning was never set.
      v = {};
    } else {
      try {
        v = JSON.parse(text);
      } catch {
        throw new MfaDeleteInputError('This is not JSON. Give the output of: aws s3api get-bucket-versioning --bucket <bucket> --output json');
      }
    }
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new MfaDeleteInputError('Expected a JSON object such as {"Status": "Enabled", "MFADelete": "Enabled"} (the output of aws s3api get-bucket-versioning).');
  }
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (k !== 'Status' && k !== 'MFADelete' && k !== 'ResponseMetadata') throw new MfaDeleteInputError(`Unexpected field ${JSON.stringify(k)}: this does not look like a GetBucketVersioning answer.`);
  }
  const status = o.Status ?? null;
  const mfa = o.MFADelete ?? null;
  if (status !== null && status !== 'Enabled' && status !== 'Suspended') throw new MfaDeleteInputError(`Status is ${JSON.stringify(status)}; S3 answers "Enabled" or "Suspended".`);
  if (mfa !== null && mfa !== 'Enabled' && mfa !== 'Disabled') throw new MfaDeleteInputError(`MFADelete is ${JSON.stringify(mfa)}; S3 answers "Enabled" or "Disabled".`);
  const versioning = status === null ? 'NeverEnabled' : status;
  const mfaDelete = mfa === 'Enabled' ? 'Enabled' : 'Disabled';
  const name = bucket ?? 'the bucket';
  const ok = versioning === 'Enabled' && mfaDelete === 'Enabled';
  let message: string;
  if (ok) message = `MFA delete is on for ${name}: deleting an object version or changing versioning needs the root user's MFA code.`;
  else if (versioning !== 'Enabled') message = `Versioning is ${versioning === 'Suspended' ? 'suspended' : 'not enabled'} on ${name}, so MFA delete is off. This is not a Custody evidence bucket as deployed (it is created versioned); check the bucket name.`;
  else message = `MFA delete is off for ${name}. Turn it on as the root user (CloudShell, signed in as root with MFA): scripts/enable-mfa-delete.sh ${bucket ?? '<bucket>'} <root MFA device ARN> <current 6-digit code>`;
  return { bucket, versioning, mfaDelete, ok, message };
}
