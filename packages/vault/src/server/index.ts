export { buildServer, Metrics, type ServerOptions } from './app.js';
