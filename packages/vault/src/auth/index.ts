export { Authenticator, createPrincipal, generateToken, hashToken, TOKEN_PREFIX, type NewPrincipal } from './tokens.js';
export { ActionRegistry, type ActionHandler, type ActionContext } from './actions.js';
