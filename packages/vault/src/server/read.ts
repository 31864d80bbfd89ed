/**
 * The auditor's read API: the C2SP tlog-tiles tree of every log (checkpoint, hash tiles,
 * entry bundles decrypted for the reader) and the JSON conveniences: log list, one entry
 * with its inclusion proof, consistency proofs.
 */
import type { FastifyInstance } from 'fastify';
import { isAbsolute, relative } from 'node:path';
import { realpathSync } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import {
  parseTilePath,
  decodeBundle,
  proveInclusion,
  proveConsistency,
  treeRoot,
  toBase64,
  formatProofFile,
  hashLeaf,
  VerifyError,
  type TileId,
} from '@custody/verify';
import { CustodyError } from '../errors.js';
import type { Vault } from '../vault.js';
import { parseEntry } from '../log/entry.js';
import { nativeSha256 } from '../crypto/sha256.js';
import { purgeOnRecord } from '../lifecycle/store.js';
import type { LogSequencer } from '../sequencer/log-sequencer.js';
import type { LogKeys } from '../crypto/keyring.js';

const AUDITOR = { roles: ['auditor' as const] };

function parseIndex(v: unknown, name: string): number {
  if (typeof v !== 'string' || !/^(0|[1-9][0-9]{0,15})$/.test(v) || !Number.isSafeInteger(Number(v))) {
    throw new CustodyError('BAD_REQUEST', `${name} must be a non-negative whole number, got ${JSON.stringify(v)}.`);
  }
  return Number(v);
}

function archiveOf(s: LogSequencer): Record<string, unknown> {
  try {
    return s.store.archiveStatus(s.size);
  } catch (e) {
    return { problem: (e as Error).message };
  }
}

/**
 * Where a log lives (issue 6, region pinning): its storage location and the key its new bundles
 * are sealed under. Public facts only: ids, ARNs, paths — never key material. `storage.path` is
 * relative to the data directory unless the log was placed elsewhere (absolute then). Also used
 * offline by `custody logs --data`.
 */
export function logLocation(dataDir: string, dir: string, keys: () => LogKeys): { storage: Record<string, unknown>; key: Record<string, unknown> } {
  // A log placed with --region-dir is a link from <data>/logs/<log>: show where it really is.
  let real = dir;
  let realData = dataDir;
  try {
    real = realpathSync(dir);
    realData = realpathSync(dataDir);
  } catch {
    /* not there (yet): the configured path */
  }
  const rel = relative(realData, real);
  const path = rel === '' || rel.startsWith('..') || isAbsolute(rel) ? real : rel;
  let key: Record<string, unknown>;
  try {
    const k = keys();
    const kms = k.kmsKey;
    key = kms ? { provider: 'kms', keyArn: kms.keyId, region: kms.region, kekId: k.activeKek.id } : { provider: 'local', kekId: k.activeKek.id };
  } catch (e) {
    key = { provider: 'unknown', problem: (e as Error).message };
  }
  return { storage: { kind: 'posix', path }, key };
}

export async function readRoutes(app: FastifyInstance, opts: { vault: Vault }): Promise<void> {
  const { vault } = opts;

  /**
   * A bundle, decrypted. A bundle shredded by a retention purge is ENTRY_SHREDDED (410) only
   * when custody.db holds that purge; a shred marker without one is damage (STORAGE_CORRUPT).
   */
  const readBundle = async (s: LogSequencer, k: number, width: number): Promise<Buffer | null> => {
    try {
      return await s.store.readBundle(k, width);
    } catch (e) {
      if (!(e instanceof CustodyError) || e.code !== 'ENTRY_SHREDDED') throw e;
      const purge = Number(e.details?.['purge']);
      const rec = purgeOnRecord(vault.db.sqlite, s.name, purge, k * 256);
      if (!rec) throw new CustodyError('STORAGE_CORRUPT', `Entry bundle ${k} of log "${s.name}" is missing; it is marked as shredded by purge #${purge}, but the vault has no record of that purge. Run \`custody verify\`.`);
      throw new CustodyError('ENTRY_SHREDDED', e.message, { purge: rec.id, log: s.name, from: rec.from, to: rec.to, approval: rec.approval });
    }
  };

  app.get('/v1/logs', { config: { roles: ['auditor', 'admin'] } }, async () => ({
    regionMode: vault.regionMode,
    logs: vault.logRows.map((r) => {
      const s = vault.sequencer(r.name);
      return {
        name: r.name,
        origin: r.origin,
        region: r.region,
        kind: r.kind,
        verifierKey: s.verifierKey,
        size: s.size,
        pending: s.pendingEntries,
        checkpointUrl: `/logs/${r.name}/checkpoint`,
        // Where it lives: storage location and key (docs/API.md).
        ...(vault.sharedInfo
          ? {
              // Shared mode: the log's objects in the bucket (tiles, bundles, blobs, checkpoint).
              storage: { kind: 's3', bucket: vault.sharedInfo.bucket, prefix: `${vault.sharedInfo.prefix}${r.name}/`, node: vault.sharedInfo.nodeId },
              key: logLocation(vault.dataDir, vault.dataDir, () => vault.keyring.forLog(r.name)).key,
            }
          : logLocation(vault.dataDir, s.store.dir, () => vault.keyring.forLog(r.name))),
        // The archive tier (docs/ARCHIVE.md): where archived bundles are, hot/archived counts.
        ...(vault.sharedInfo ? {} : { archive: archiveOf(s) }),
      };
    }),
  }));

  app.get<{ Params: { log: string } }>('/logs/:log/checkpoint', { config: AUDITOR }, async (req, reply) => {
    const s = vault.sequencer(req.params.log);
    return reply.type('text/plain; charset=utf-8').header('Cache-Control', 'no-cache, max-age=0').send(s.checkpoint.text);
  });

  app.get<{ Params: { log: string; '*': string } }>('/logs/:log/tile/*', { config: AUDITOR }, async (req, reply) => {
    const s = vault.sequencer(req.params.log);
    let t: TileId;
    try {
      t = parseTilePath('tile/' + req.params['*']);
    } catch (e) {
      throw new CustodyError('NOT_FOUND', `Not a C2SP tile path: ${(e as Error).message}`);
    }
    const data = t.level === 'entries' ? await readBundle(s, t.index, t.width) : await s.store.readTile(t.level, t.index, t.width);
    if (data === null) throw new CustodyError('NOT_FOUND', `Tile ${'tile/' + req.params['*']} does not exist (yet) in log "${s.name}".`);
    return reply.type('application/octet-stream').header('Cache-Control', 'public, max-age=31536000, immutable').send(data);
  });

  app.get<{ Params: { log: string; index: string } }>('/v1/logs/:log/entries/:index', { config: AUDITOR }, async (req) => {
    const s = vault.sequencer(req.params.log);
    const index = parseIndex(req.params.index, 'index');
    const cp = s.checkpoint;
    if (index >= cp.size) {
      throw new CustodyError('ENTRY_NOT_FOUND', `Log "${s.name}" has ${cp.size} integrated entries; entry ${index} does not exist yet.`);
    }
    const k = Math.floor(index / 256);
    const width = Math.min(256, cp.size - k * 256);
    let bundle: Buffer | null;
    try {
      bundle = await readBundle(s, k, width);
    } catch (e) {
      if (!(e instanceof CustodyError) || e.code !== 'ENTRY_SHREDDED') throw e;
      // The record is gone; its leaf hash stays in the tree, and so does its proof.
      const proof = proveInclusion(index, cp.size, s.nodeReader(cp.size), nativeSha256);
      throw new CustodyError('ENTRY_SHREDDED', `Entry ${index} of log "${s.name}" was past retention and crypto-shredded by approved purge #${e.details?.['purge']}; its leaf hash and inclusion proof remain.`, {
        ...e.details,
        index,
        treeSize: cp.size,
        leafHash: toBase64(s.nodeReader(cp.size)(0, index)),
        inclusionProof: proof.map(toBase64),
        checkpoint: cp.text,
      });
    }
    if (!bundle) throw new CustodyError('STORAGE_CORRUPT', `The entry bundle holding entry ${index} of log "${s.name}" is missing from storage.`);
    const entry = decodeBundle(bundle, width)[index - k * 256]!;
    const parsed = parseEntry(entry);
    const record = parsed.blob ? await s.store.readBlob(parsed.blob.sha256) : parsed.record!;
    const leafHash = hashLeaf(entry, nativeSha256);
    const proof = proveInclusion(index, cp.size, s.nodeReader(cp.size), nativeSha256);
    const text = isUtf8(record);
    return {
      log: s.name,
      index,
      treeSize: cp.size,
      leafHash: toBase64(leafHash),
      envelope: {
        origin: parsed.origin,
        region: parsed.region,
        source: parsed.source,
        producer: parsed.producer,
        received: parsed.received,
        ...(parsed.attrs ? { attrs: parsed.attrs } : {}),
        salt: parsed.salt.toString('base64'),
        blob: parsed.blob,
      },
      record: text ? record.toString('utf8') : record.toString('base64'),
      recordEncoding: text ? 'utf8' : 'base64',
      entry: Buffer.from(entry).toString('base64'),
      inclusionProof: proof.map(toBase64),
      checkpoint: cp.text,
      proofFile: formatProofFile({ index, proof, checkpoint: cp.text }),
    };
  });

  app.get<{ Params: { log: string }; Querystring: { from?: string; to?: string } }>('/v1/logs/:log/proofs/consistency', { config: AUDITOR }, async (req) => {
    const s = vault.sequencer(req.params.log);
    const cp = s.checkpoint;
    const from = parseIndex(req.query.from, 'from');
    const to = req.query.to === undefined ? cp.size : parseIndex(req.query.to, 'to');
    if (from > to || to > cp.size) {
      throw new CustodyError('BAD_REQUEST', `Need 0 ≤ from ≤ to ≤ ${cp.size} (the current size of log "${s.name}"); got from=${from} to=${to}.`);
    }
    const reader = s.nodeReader(cp.size);
    try {
      const sub = s.nodeReader(to);
      return {
        log: s.name,
        from,
        to,
        fromRoot: toBase64(treeRoot(from, reader, nativeSha256)),
        toRoot: toBase64(treeRoot(to, reader, nativeSha256)),
        proof: proveConsistency(from, to, sub, nativeSha256).map(toBase64),
        checkpoint: to === cp.size ? cp.text : undefined,
      };
    } catch (e) {
      if (e instanceof VerifyError) throw new CustodyError('BAD_REQUEST', e.message);
      throw e;
    }
  });

  app.get<{ Params: { log: string }; Querystring: { index?: string; size?: string } }>('/v1/logs/:log/proofs/inclusion', { config: AUDITOR }, async (req) => {
    const s = vault.sequencer(req.params.log);
    const cp = s.checkpoint;
    const index = parseIndex(req.query.index, 'index');
    const size = req.query.size === undefined ? cp.size : parseIndex(req.query.size, 'size');
    if (index >= size || size > cp.size) {
      throw new CustodyError('BAD_REQUEST', `Need index < size ≤ ${cp.size} (the current size of log "${s.name}"); got index=${index} size=${size}.`);
    }
    const reader = s.nodeReader(cp.size);
    return {
      log: s.name,
      index,
      size,
      root: toBase64(treeRoot(size, reader, nativeSha256)),
      proof: proveInclusion(index, size, s.nodeReader(size), nativeSha256).map(toBase64),
      checkpoint: size === cp.size ? cp.text : undefined,
    };
  });
}
