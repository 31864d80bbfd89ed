/** The AWS blueprint of the Custody security account (issue 8). */
export const BLUEPRINT_VERSION = '0.1.0';
