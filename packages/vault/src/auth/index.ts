export { Authenticator, createPrincipal, generateToken, hashToken, TOKEN_PREFIX, type NewPrincipal } from './tokens.js';
export { ActionRegistry, type ActionHandler, type ActionContext } from './actions.js';
export { Totp, AdminTotp, adminTotp, setAdminClock, hotp, base32Encode, base32Decode, otpauthUri, type TotpCheck, type TotpFailure } from './totp.js';
export { approvals, Approvals, ApprovalStore, activeAdmins, redactSecrets, APPROVAL_STATUSES, type Approval, type ApprovalStatus } from './approvals.js';
