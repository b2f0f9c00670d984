/* units_cmd - `payguard units [-c CONFIG] [--host NAME]`: the systemd units
 * of the instances the configuration runs on this host, one a line, in the
 * order `payguard up` starts them (audit first, the console last):
 *
 *	systemctl enable --now $(payguard units -c /etc/payguard/payguard.cfg)
 *
 * Each is an instance of a template the Debian package installs
 * (payguard-<stage>@.service, %i the instance index; README, "Running under
 * systemd"); the package's postinst enables these for the installed
 * configuration, and after changing <stage>/instances the operator enables
 * the new ones (and disables the ones gone) the same way.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* cmd_units - see above; 0, or 2 for a configuration that does not load or
 * spreads the group over hosts without --host */
int cmd_units(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            i++;
        } else {
            fprintf(stderr, "usage: payguard units [-c CONFIG] [--host NAME]\n");
            return 2;
        }
    config_t *c;
    if (cli_load_config(cli_opt_config(argc, argv), &c) != 0)
        return 2;
    if (config_multi_host(c) && !config_host(c)) {
        fprintf(stderr, "payguard: the configuration spreads the group over hosts: say which this is (--host NAME)\n");
        config_destroy(&c);
        return 2;
    }
    for (int s = CONFIG_NSTAGES - 1; s >= 0; s--)
        for (int i = 0; i < config_instances(c, config_stages[s]); i++)
            if (config_runs_here(c, config_stages[s], i))
                printf("payguard-%s@%d.service\n", config_stages[s], i);
    if (strcmp(config_get(c, "console/enabled"), "yes") == 0 && config_runs_here(c, "console", 0))
        printf("payguard-console@0.service\n");
    config_destroy(&c);
    return 0;
}
