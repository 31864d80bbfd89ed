/**
 * Dangerous actions under the two-person rule. A concern that owns a dangerous action
 * (adding an admin, revoking all writers of a source, disabling or loosening an alarm rule,
 * removing a notifier, rotating a log's keys, extending retention, purging expired data)
 * registers a handler here; the approvals service (auth/approvals.ts) stores requests and runs
 * `execute` only after a different admin approved with their own TOTP code.
 */
import { CustodyError } from '../errors.js';

export interface ActionContext {
  /** The approval request's id. */
  requestId: string;
  /** Principal names. */
  requestedBy: string;
  approvedBy: string;
}

export interface ActionHandler<P = Record<string, unknown>> {
  /** One plain sentence: what approving this will do ("Extend retention of eu-west-1 to 400 days"). */
  describe(params: P): string;
  /**
   * Checks and normalises the parameters; throws CustodyError (BAD_REQUEST or the concern's own
   * code) when they are wrong. Called when the request is made and again right before executing.
   */
  validate(params: unknown): P;
  /**
   * False when this particular change is not dangerous and may be done at once by one admin
   * with TOTP (e.g. a rule change that only tightens). Absent: always needs approval.
   */
  needsApproval?(params: P): boolean;
  /** Does it. The result is returned to the approver and recorded in the audit log. */
  execute(params: P, ctx: ActionContext): Promise<Record<string, unknown>>;
}

export class ActionRegistry {
  private readonly handlers = new Map<string, ActionHandler<any>>();

  register<P>(type: string, h: ActionHandler<P>): void {
    if (this.handlers.has(type)) throw new Error(`action ${type} is registered twice`);
    this.handlers.set(type, h);
  }

  get(type: string): ActionHandler<any> {
    const h = this.handlers.get(type);
    if (!h) throw new CustodyError('BAD_REQUEST', `"${type}" is not an action that needs approval; the known ones are ${[...this.handlers.keys()].sort().join(', ')}.`);
    return h;
  }

  has(type: string): boolean {
    return this.handlers.has(type);
  }

  types(): string[] {
    return [...this.handlers.keys()].sort();
  }
}
