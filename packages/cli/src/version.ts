/** The CLI's version, in its own module so commands can read it without importing the program that lists them. */
export const CLI_VERSION = "0.1.0";
