/**
 * README.txt of an evidence bundle: for whoever receives it, in plain words — what it is, how
 * to check it with `custody verify-bundle`, and how to check it by hand or with other tools.
 */
export interface ReadmeFacts {
  created: string;
  vault: string;
  query: string | null;
  from: string | null;
  to: string | null;
  count: number;
  logs: Array<{ name: string; origin: string; verifierKey: string; size: number; items: number }>;
}

const n = (v: number): string => v.toLocaleString('en-US');

export function readmeText(f: ReadmeFacts): string {
  const what: string[] = [];
  if (f.query !== null) what.push(`They are the records that matched the search query\n\n    ${f.query}\n`);
  else what.push('They were chosen one by one by whoever exported them.\n');
  if (f.from !== null || f.to !== null) what.push(`\nTime range asked for: ${f.from ?? 'the beginning'} to ${f.to ?? 'now'}.\n`);
  const keys = f.logs.map((l) => `--key '${l.verifierKey}'`).join(' \\\n      ');
  return `CUSTODY EVIDENCE BUNDLE (format custody-evidence/v1)
====================================================

What this is
------------
This archive holds ${n(f.count)} log record${f.count === 1 ? '' : 's'} from the Custody vault "${f.vault}",
exported on ${f.created}. ${what.join('')}
Every record comes with the proof that it is part of a tamper-evident log (a Merkle tree, as
in Certificate Transparency) whose state the log's key signed. Anyone can check, without
trusting Custody, its operator or whoever handed over this file, that each record is exactly
what the log holds and has not been changed since.

Logs in this bundle
-------------------
${f.logs
  .map(
    (l) => `  ${l.name}: origin ${l.origin}
    ${n(l.items)} record${l.items === 1 ? '' : 's'}, all proven against the signed checkpoint of tree size ${n(l.size)}
    verifier key (compare it with one you got from the log's operator):
    ${l.verifierKey}`,
  )
  .join('\n')}

How to check it (the easy way)
------------------------------
1. Get each log's verifier key from a source you trust — the vault's operator, or a key you
   pinned before. The copies in keys/ come with the bundle, so they prove nothing by themselves.
2. Run (no server and no network needed):

      custody verify-bundle ${'<this file>.zip'} \\
      ${keys}

   It prints OK, or each problem and the file it is in, and exits 0 (valid) or 1 (invalid).
   A bundle unzipped into a folder can be checked the same way: custody verify-bundle <folder>.

What is in it
-------------
  README.txt                        this text
  manifest.json                     what the bundle holds, and the SHA-256 of every other file
  manifest.json.sha256              the SHA-256 of manifest.json (sha256sum format)
  keys/<log>.vkey                   each log's verifier key (C2SP signed-note format)
  checkpoints/<log>.checkpoint      the log's signed checkpoint (with witness cosignatures when
                                    there are any); every record of that log is proven against it
  entries/<log>/<index>.entry       the log entry exactly as stored: the leaf of the tree
  records/<log>/<index>             the record exactly as it was received
  proofs/<log>/<index>.tlog-proof   the entry's inclusion proof (C2SP tlog-proof)

How to check it by hand, or with other tools
--------------------------------------------
1. Files: "sha256sum -c manifest.json.sha256", then every file listed in manifest.json, e.g.
      jq -r '.sha256 | to_entries[] | "\\(.value)  \\(.key)"' manifest.json | sha256sum -c
2. Checkpoint: checkpoints/<log>.checkpoint is a signed note (c2sp.org/signed-note) whose text
   is a checkpoint (c2sp.org/tlog-checkpoint): the origin, the tree size, the base64 root hash.
   Check its Ed25519 signature with the log's verifier key (Go: golang.org/x/mod/sumdb/note,
   note.Open with note.NewVerifier(key)).
3. Leaf: the leaf hash of an entry is SHA-256 of one zero byte followed by the entry file's
   bytes (RFC 6962 / RFC 9162: SHA-256(0x00 || entry)).
4. Proof: proofs/<log>/<index>.tlog-proof (c2sp.org/tlog-proof) is the line
   "c2sp.org/tlog-proof@v1", the line "index <n>", the inclusion proof hashes in base64 one per
   line, a blank line, and the same signed checkpoint. Recompute the root from the leaf hash,
   the index and the proof (RFC 9162 section 2.1.3.2; Go: golang.org/x/mod/sumdb/tlog,
   tlog.CheckRecord) and compare it with the checkpoint's root.
5. Record: an entry is the envelope "custody-entry/v1" — header lines (log origin, region,
   source, producer, time received, a random salt, ...), a blank line, then the record byte for
   byte. records/<log>/<index> must equal that tail. A record too large for one entry is kept
   outside it: the entry then ends with the line "blob sha256:<hex> <size>" and the record file
   must have exactly that SHA-256 and size.

What it proves, and what it does not
------------------------------------
- Proven: each entry is in its log at the index given, under the root the log's key signed;
  each record is the one its entry holds or names; nothing in the bundle changed since export.
- Not proven: that these are all the records that match the query (the query ran on Custody's
  search index, which is rebuilt from the log and never trusted as proof), nor the export time
  and query text above. Those describe the export; they are not evidence.
- A later checkpoint of the same log must be consistent with the one here; "custody proof
  consistency" (or Go's tlogcheck -old) proves that against the live log.
`;
}
