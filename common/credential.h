/* credential - secret files systemd hands to one unit (LoadCredential=).
 *
 * A setting that names a secret file (validate/<psp>_secrets_file and
 * token_file, execute/token_file, triage/llm_key_file, audit's
 * signing_key_file, catchup/key_file and token_file) takes either a path or
 * "credential:<name>": the file <name> in the directory $CREDENTIALS_DIRECTORY,
 * which systemd sets for a unit with LoadCredential=<name>:<source file>. It
 * copies the source (readable by root only) there at each start, for that
 * unit's processes alone: so the package's units give execute alone the
 * write token and validate alone the webhook secrets (README, "Running
 * under systemd"). Outside systemd the variable is unset and the setting is
 * refused, saying so, rather than read from somewhere else.
 */
#ifndef PG_CREDENTIAL_H
#define PG_CREDENTIAL_H

#include <stdbool.h>
#include <stddef.h>

#define CREDENTIAL_PREFIX "credential:"
#define CREDENTIAL_DIR_ENV "CREDENTIALS_DIRECTORY"
#define CREDENTIAL_NAME_MAX 255 /* a file name */

/* credential_is - value has the form "credential:<name>" */
bool credential_is(const char *value);

/* credential_path - the file a secret setting's value names: the value
 * itself, or for "credential:<name>" $CREDENTIALS_DIRECTORY/<name>. 0 and
 * the path in out; -1 and err (naming the value, never a file's content)
 * for a name that is empty, longer than CREDENTIAL_NAME_MAX, ".", ".." or
 * holds '/', for $CREDENTIALS_DIRECTORY unset, empty or relative, and for a
 * path longer than outlen */
int credential_path(const char *value, char *out, size_t outlen, char *err, size_t errlen);

#endif
