/* keygen_cmd - `payguard keygen [-c CONFIG]`: the CURVE key pairs of every
 * instance of the group and of the operator's tools, in payguard/keys_dir
 * (common/curve.h). Keys that exist are kept; to rotate one, stop the
 * group, delete its two files and run keygen again. Copy keys_dir to every
 * host of the group: each needs every public key and its own instances'
 * pairs. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "curve.h"

int cmd_keygen(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-c") != 0 || ++i >= argc) {
            fprintf(stderr, "usage: payguard keygen [-c CONFIG]\n");
            return 2;
        }
    config_t *c;
    if (cli_load_config(cli_opt_config(argc, argv), &c) != 0)
        return 2;
    char err[512];
    int made = curve_keygen(c, err, sizeof err);
    if (made < 0)
        fprintf(stderr, "payguard: keygen: %s\n", err);
    else
        printf("%d key pair(s) made, the others kept; copy %s to every host of the group%s\n", made,
               config_get(c, "payguard/keys_dir"),
               curve_enabled(c) ? "" : " (and set payguard/curve = yes to use them)");
    config_destroy(&c);
    return made < 0 ? 1 : 0;
}
