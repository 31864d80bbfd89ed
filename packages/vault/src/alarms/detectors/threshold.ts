/**
 * Sliding-window counts for threshold rules: per rule and group (e.g. per address), the
 * matching events of the last `windowMs`. When the count reaches the rule's `count`, one alarm
 * is raised and the group stays quiet for a window; a burst that goes on raises again after
 * that, and the alarm center folds the repeat into the same alarm (same group key).
 */
import type { ThresholdRule } from './rule.js';

export const MAX_GROUPS_PER_RULE = 10_000;

export interface Crossing {
  count: number;
  firstAt: number;
  lastAt: number;
}

class Window {
  times: number[] = [];
  weights: number[] = [];
  head = 0;
  sum = 0;
  quietUntil = 0;

  prune(now: number, windowMs: number): void {
    const from = now - windowMs;
    while (this.head < this.times.length && this.times[this.head]! < from) {
      this.sum -= this.weights[this.head]!;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.times.length) {
      this.times = this.times.slice(this.head);
      this.weights = this.weights.slice(this.head);
      this.head = 0;
    }
  }
}

export class ThresholdCounter {
  private readonly groups = new Map<string, Window>();
  private full = false;

  constructor(readonly rule: ThresholdRule) {}

  /** Counts one event (of `weight`); returns the crossing when this event makes it alarm. */
  add(group: string, weight: number, now: number): Crossing | null {
    const r = this.rule;
    let w = this.groups.get(group);
    if (!w) {
      if (this.groups.size >= MAX_GROUPS_PER_RULE) {
        this.sweep(now);
        if (this.groups.size >= MAX_GROUPS_PER_RULE) {
          this.full = true;
          return null;
        }
      }
      w = new Window();
      this.groups.set(group, w);
    }
    w.prune(now, r.windowMs);
    // A window holds at most a few times `count` entries: beyond that the sum says enough.
    if (w.times.length - w.head < Math.max(4 * r.count, 64)) {
      w.times.push(now);
      w.weights.push(weight);
    } else {
      w.weights[w.weights.length - 1]! += weight;
    }
    w.sum += weight;
    if (w.sum >= r.count && now >= w.quietUntil) {
      w.quietUntil = now + r.windowMs;
      return { count: w.sum, firstAt: w.times[w.head] ?? now, lastAt: now };
    }
    return null;
  }

  /** Drops groups with nothing in their window. */
  sweep(now: number): void {
    for (const [k, w] of this.groups) {
      w.prune(now, this.rule.windowMs);
      if (w.sum <= 0 && now >= w.quietUntil) this.groups.delete(k);
    }
  }

  /** Whether groups were turned away because the table was full. */
  get overflowed(): boolean {
    return this.full;
  }
}
