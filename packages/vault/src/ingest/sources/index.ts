/**
 * The source parsers: each turns one kind of delivered input into byte-exact records with
 * common fields (docs/SOURCES.md). `sourceParser(name)` finds one; `detectSource` picks one
 * from a file name / S3 key and the first bytes of content.
 */
import { CustodyError } from '../../errors.js';
import type { SourceParser, ParseContext } from '../types.js';
import { jsonParser, textParser } from './generic.js';
import { cloudtrailParser, cloudtrailDigestParser } from './cloudtrail.js';
import { configParser } from './config.js';
import { cwlogsParser } from './cwlogs.js';
import { vpcflowParser } from './vpcflow.js';
import { guarddutyParser } from './guardduty.js';
import { macieParser } from './macie.js';
import { applogParsers } from './applogs.js';

const PARSERS = new Map<string, SourceParser>();

export function registerParser(p: SourceParser): void {
  PARSERS.set(p.name, p);
}

// Order matters only for ties in detection.
for (const p of [cloudtrailParser, cloudtrailDigestParser, configParser, guarddutyParser, macieParser, cwlogsParser, vpcflowParser, ...applogParsers, jsonParser, textParser]) registerParser(p);

export function sourceParsers(): SourceParser[] {
  return [...PARSERS.values()];
}

export function hasParser(name: string): boolean {
  return PARSERS.has(name);
}

export function sourceParser(name: string): SourceParser {
  const p = PARSERS.get(name);
  if (!p) throw new CustodyError('UNKNOWN_SOURCE', `There is no source parser "${name.slice(0, 64)}"; use one of: auto, ${[...PARSERS.keys()].join(', ')}.`);
  return p;
}

/**
 * The parser for an input, from its name (file name or S3 key) and content. Falls back to
 * "json" for JSON content and "text" for anything else.
 */
export function detectSource(body: Buffer, ctx: ParseContext): string {
  const head = body.subarray(0, 64 * 1024);
  let best = '';
  let bestScore = 0;
  for (const p of PARSERS.values()) {
    if (!p.detect) continue;
    let s = 0;
    try {
      s = p.detect(head, ctx);
    } catch {
      s = 0;
    }
    if (s > bestScore) {
      best = p.name;
      bestScore = s;
    }
  }
  if (bestScore > 0) return best;
  const first = firstNonSpace(body);
  return first === 0x7b || first === 0x5b ? 'json' : 'text';
}

export function firstNonSpace(body: Buffer): number {
  for (let i = 0; i < body.length && i < 4096; i++) {
    const c = body[i]!;
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09 && c !== 0xef && c !== 0xbb && c !== 0xbf) return c;
  }
  return -1;
}
