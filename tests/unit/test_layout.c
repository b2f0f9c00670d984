/* test_layout - the data directory's split of partitioned state: a group
 * never starts on state split otherwise than its configuration routes */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "layout.h"

static char s_dir[] = "/tmp/pg-layout-XXXXXX";

static void s_setup(void)
{
    cr_assert_not_null(mkdtemp(s_dir));
}

static void s_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(layout, .init = s_setup, .fini = s_teardown);

/* s_config - a config over s_dir with these instances and partitions */
static config_t *s_config(int validate, int execute, int partitions)
{
    char path[128], text[512];
    snprintf(path, sizeof path, "%s/payguard.cfg", s_dir);
    snprintf(text, sizeof text,
             "payguard\n    data_dir = %s/data\n    run_dir = %s/run\n    partitions = %d\nvalidate\n    instances = "
             "%d\nexecute\n    instances = %d\n",
             s_dir, s_dir, partitions, validate, execute);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    char err[256];
    config_t *c = config_load(path, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    return c;
}

/* s_journal - give instance n of stage a journal with one record */
static void s_journal(const config_t *c, const char *stage, int n)
{
    char data[256], err[256];
    snprintf(data, sizeof data, "%s/data", s_dir);
    mkdir(data, 0750);
    char *dir = config_journal_dir(c, stage, n);
    journal_t *j = journal_open(dir, NULL, err, sizeof err);
    cr_assert_not_null(j, "%s", err);
    cr_assert_eq(journal_append(j, "C1", 2, NULL), 0);
    journal_close(&j);
    free(dir);
}

Test(layout, a_new_data_directory_takes_any_layout_and_records_it)
{
    config_t *c = s_config(3, 2, 64);
    char err[1024] = "", path[128];
    snprintf(path, sizeof path, "%s/data", s_dir);
    mkdir(path, 0750);
    cr_assert_eq(layout_check(c, err, sizeof err), 0, "%s", err);
    layout_t l;
    cr_assert_eq(layout_read(c, &l, err, sizeof err), 0, "%s", err);
    cr_assert_eq(l.partitions, 64);
    cr_assert_eq(l.instances[0], 3);
    cr_assert_eq(l.instances[1], 1, "approve keeps its default");
    cr_assert_eq(l.instances[2], 2);
    config_destroy(&c);
}

Test(layout, state_of_one_instance_refuses_three_and_names_the_command)
{
    config_t *c = s_config(1, 1, 64);
    s_journal(c, "validate", 0);
    char err[1024] = "";
    cr_assert_eq(layout_check(c, err, sizeof err), 0, "state before layouts existed, one instance: %s", err);
    config_destroy(&c);
    c = s_config(3, 1, 64);
    cr_assert_eq(layout_check(c, err, sizeof err), -1);
    cr_assert(strstr(err, "validate") && strstr(err, "payguard repartition"), "%s", err);
    config_destroy(&c);
}

Test(layout, without_a_file_the_journals_tell_the_old_split)
{
    config_t *c = s_config(2, 1, 64);
    s_journal(c, "execute", 0);
    s_journal(c, "execute", 1); /* two execute journals: state split two ways */
    char err[1024] = "";
    cr_assert_eq(layout_check(c, err, sizeof err), -1, "execute = 1 on state in two journals");
    cr_assert(strstr(err, "execute"), "%s", err);
    config_destroy(&c);
}

Test(layout, partitions_matter_only_with_more_than_one_instance)
{
    config_t *c = s_config(2, 1, 64);
    s_journal(c, "validate", 0);
    s_journal(c, "execute", 0);
    char err[1024] = "";
    cr_assert_eq(layout_write(c, err, sizeof err), 0, "%s", err);
    config_destroy(&c);
    c = s_config(2, 1, 128);
    cr_assert_eq(layout_check(c, err, sizeof err), -1, "validate's 2 instances own other keys with 128 partitions");
    cr_assert(strstr(err, "partitions = 128"), "%s", err);
    config_destroy(&c);
    c = s_config(1, 1, 128);
    s_journal(c, "validate", 1);
    cr_assert_eq(layout_check(c, err, sizeof err), -1, "2 -> 1 moves state too");
    config_destroy(&c);
}

Test(layout, an_interrupted_repartition_refuses_until_finished)
{
    config_t *c = s_config(1, 1, 64);
    char err[1024] = "", path[CONFIG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/data", s_dir);
    mkdir(path, 0750);
    layout_intent_path(c, path, sizeof path);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("validate 2 1700000000\n", f);
    fclose(f);
    cr_assert_eq(layout_check(c, err, sizeof err), -1);
    cr_assert(strstr(err, "interrupted"), "%s", err);
    config_destroy(&c);
}
