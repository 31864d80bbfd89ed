export { Authenticator, createPrincipal, generateToken, hashToken, TOKEN_PREFIX, type NewPrincipal } from './tokens.js';
