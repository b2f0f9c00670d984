/* master - the supervisor: start the group, restart what crashes, stop in order.
 *
 * Like Postfix's master(8): one small process that forks every stage
 * instance the configuration asks for, and does nothing else. Children are
 * started consumers first (audit, execute, approve, triage, validate, ingest)
 * so each producer finds its consumer listening, and stopped producers first
 * (ingest ... audit) so that each stage can drain into a consumer that is
 * still there: nothing is lost on `payguard down`.
 *
 * With sandbox/enabled = yes it also runs pg-sandbox, the local stand-in for
 * the outside systems: started before the stages, stopped after them. With
 * console/enabled = yes it runs the ops console (console/main.c): started
 * after the stages, stopped before them.
 *
 * A child that exits unexpectedly is restarted after a backoff that doubles
 * from 100 ms up to payguard/restart_max_ms, and resets once the child has
 * run for 30 s. Each child gets PR_SET_PDEATHSIG(SIGTERM): if the master is
 * killed, its stages drain and stop rather than linger unsupervised.
 *
 * With catchup/every_s > 0 (and ingest run here) it also runs `payguard
 * catch-up stripe --since now-<catchup/window_s> --quiet` every every_s
 * seconds, a child that is not restarted (catchup_job.c).
 *
 * FILES (in run_dir)
 *	master.pid	the master's pid, locked (flock) while it runs
 *	master.state	one line per instance: name pid started_unix restarts
 *	<inst>.stat	written by each stage: counters, unacked, journal seq
 *	catchup.stat	the periodic catch-up's runs, failures, last exit status
 *	payguard.log	the group's log when started with -d
 */
#include "cli.h"
#include "stage.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "catchup_job.h"
#include "layout.h"
#include "listenfd.h"
#include "log.h"
#include "sdnotify.h"

#define MASTER_MAX_CHILDREN (CONFIG_NSTAGES * CONFIG_MAX_INSTANCES + 2) /* + sandbox, console */
#define MASTER_STABLE_MS 30000

typedef struct {
    char stage[16];
    char bin[32]; /* the program: the stage's name, pg-sandbox or console */
    int index;
    char inst[32];
    pid_t pid; /* 0: not running */
    int64_t started_ms;
    int64_t restart_at_ms; /* when to start again, 0: not scheduled */
    long backoff_ms;
    unsigned restarts;
    int listen_fd;   /* the stage's shared listening socket (listenfd.h), -1: none */
    bool own_listen; /* a socket of its own, bound at each start (listenfd_bind_shared) */
} child_t;

typedef struct {
    config_t *config;
    const char *cfg_path;
    char bindir[PATH_MAX];
    child_t kids[MASTER_MAX_CHILDREN];
    int nkids;
    long restart_max_ms;
    long drain_ms;
    sigset_t old_mask;
    int listen_fd[CONFIG_NSTAGES];     /* per stage that serves HTTP: bound once, handed to each instance,
                                          or (per_instance) the port's reservation, handed to none */
    bool per_instance[CONFIG_NSTAGES]; /* two or more instances here: one SO_REUSEPORT socket each */
    char listen_addr[CONFIG_NSTAGES][64];
    long listen_port[CONFIG_NSTAGES];
    catchup_job_t job; /* the periodic catch-up (catchup_job.h) */
    int ready_fd;      /* up -d: the waiting parent's pipe, until every process is ready (-1: none) */
    int64_t ready_deadline_ms;
    int64_t ready_checked_ms;
} master_t;

/* s_mono_ms - monotonic clock for timers */
static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* s_bind_own - a listening socket of k's own on its stage's port
 * (listenfd_bind_shared); -1 and a restart scheduled if it cannot be bound */
static int s_bind_own(master_t *m, child_t *k)
{
    int s = config_stage_index(k->stage);
    assert(s >= 0 && m->per_instance[s]);
    char err[256];
    k->listen_fd = listenfd_bind_shared(m->listen_addr[s], m->listen_port[s], err, sizeof err);
    if (k->listen_fd >= 0)
        return 0;
    log_error("%s: %s; trying again in 1000 ms", k->inst, err);
    k->restart_at_ms = s_mono_ms() + 1000;
    return -1;
}

/* s_spawn - fork and exec one stage instance */
static int s_spawn(master_t *m, child_t *k)
{
    char path[PATH_MAX + 32], idx[16];
    snprintf(path, sizeof path, "%s/%s", m->bindir, k->bin);
    snprintf(idx, sizeof idx, "%d", k->index);
    if (k->own_listen && s_bind_own(m, k) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork for %s: %s", k->inst, strerror(errno));
        if (k->own_listen)
            close(k->listen_fd);
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0); /* a terminal's ^C reaches the master only: it stops us in order */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        sigprocmask(SIG_SETMASK, &m->old_mask, NULL);
        if (k->listen_fd >= 0) { /* this one child inherits the socket */
            char fd[16];
            snprintf(fd, sizeof fd, "%d", k->listen_fd);
            fcntl(k->listen_fd, F_SETFD, 0);
            setenv(LISTENFD_ENV, fd, 1);
        }
        char *argv[6] = {k->bin, "-i", idx, NULL, NULL, NULL};
        if (m->cfg_path) {
            argv[3] = "-c";
            argv[4] = (char *) m->cfg_path;
        }
        execv(path, argv);
        log_error("cannot exec %s: %s", path, strerror(errno)); /* in the group log, in its format */
        _exit(127);
    }
    if (k->own_listen) { /* the instance's alone: closed with it, so the kernel stops sending it connections */
        close(k->listen_fd);
        k->listen_fd = -1;
    }
    k->pid = pid;
    k->started_ms = s_mono_ms();
    k->restart_at_ms = 0;
    log_info("started %s pid=%d", k->inst, (int) pid);
    return 0;
}

/* s_write_state - master.state for `payguard status` (atomic rename) */
static void s_write_state(master_t *m)
{
    char path[CONFIG_PATH_MAX + 32], tmp[CONFIG_PATH_MAX + 40];
    snprintf(path, sizeof path, "%s/master.state", config_run_dir(m->config));
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    int64_t now_mono = s_mono_ms();
    long long now = (long long) time(NULL);
    for (int i = 0; i < m->nkids; i++) {
        child_t *k = &m->kids[i];
        long long started = k->pid ? now - (now_mono - k->started_ms) / 1000 : 0;
        fprintf(f, "%s %d %lld %u\n", k->inst, (int) k->pid, started, k->restarts);
    }
    fclose(f);
    rename(tmp, path);
}

/* s_reap - collect exited children; schedule restarts unless stopping */
static void s_reap(master_t *m, bool stopping)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (catchup_job_reaped(&m->job, pid, status, s_mono_ms()))
            continue;
        for (int i = 0; i < m->nkids; i++) {
            child_t *k = &m->kids[i];
            if (k->pid != pid)
                continue;
            k->pid = 0;
            if (stopping)
                break;
            int64_t ran = s_mono_ms() - k->started_ms;
            if (ran >= MASTER_STABLE_MS)
                k->backoff_ms = 100;
            else
                k->backoff_ms = k->backoff_ms ? k->backoff_ms * 2 : 100;
            if (k->backoff_ms > m->restart_max_ms)
                k->backoff_ms = m->restart_max_ms;
            k->restart_at_ms = s_mono_ms() + k->backoff_ms;
            k->restarts++;
            if (WIFSIGNALED(status))
                log_warn("%s pid=%d killed by signal %d after %lld ms; restart in %ld ms", k->inst, (int) pid,
                         WTERMSIG(status), (long long) ran, k->backoff_ms);
            else
                log_warn("%s pid=%d exited with status %d after %lld ms; restart in %ld ms", k->inst, (int) pid,
                         WEXITSTATUS(status), (long long) ran, k->backoff_ms);
            break;
        }
    }
}

/* s_add_child - one process to supervise: instance <stage>.<index> of program bin */
static void s_add_child(master_t *m, const char *stage, const char *bin, int index)
{
    assert(m->nkids < MASTER_MAX_CHILDREN);
    child_t *k = &m->kids[m->nkids++];
    snprintf(k->stage, sizeof k->stage, "%s", stage);
    snprintf(k->bin, sizeof k->bin, "%s", bin);
    k->index = index;
    snprintf(k->inst, sizeof k->inst, "%s.%d", stage, index);
    int s = config_stage_index(stage);
    k->own_listen = s >= 0 && m->per_instance[s];
    k->listen_fd = s >= 0 && !k->own_listen ? m->listen_fd[s] : -1;
}

/* s_bind_ports - the listening sockets of the stages that serve HTTP
 * (ingest's webhooks, approve's approvals API), bound here before any
 * instance starts (listenfd.h): one socket for all when one instance runs
 * here, else the port reserved and a socket per instance at its start;
 * -1 and err */
static int s_bind_ports(master_t *m, char *err, size_t errlen)
{
    static const char *const serving[] = {"ingest", "approve"};
    for (int s = 0; s < CONFIG_NSTAGES; s++)
        m->listen_fd[s] = -1;
    for (size_t i = 0; i < sizeof serving / sizeof serving[0]; i++) {
        char key[64];
        long port;
        int here = 0; /* only the host that runs the stage serves its port */
        for (int k = 0; k < config_instances(m->config, serving[i]); k++)
            here += config_runs_here(m->config, serving[i], k);
        if (!here)
            continue;
        int s = config_stage_index(serving[i]);
        snprintf(key, sizeof key, "%s/http_port", serving[i]);
        if (config_int(m->config, key, 1, 65535, &port, err, errlen) != 0)
            return -1;
        snprintf(key, sizeof key, "%s/http_bind", serving[i]);
        snprintf(m->listen_addr[s], sizeof m->listen_addr[s], "%s", config_get(m->config, key));
        m->listen_port[s] = port;
        m->per_instance[s] = here > 1;
        int fd = here > 1 ? listenfd_reserve(m->listen_addr[s], port, err, errlen)
                          : listenfd_bind(m->listen_addr[s], port, err, errlen);
        if (fd < 0)
            return -1;
        m->listen_fd[s] = fd;
    }
    return 0;
}

/* s_stop_stage - SIGTERM every instance of a stage, wait, SIGKILL stragglers */
static void s_stop_stage(master_t *m, const char *stage)
{
    for (int i = 0; i < m->nkids; i++)
        if (strcmp(m->kids[i].stage, stage) == 0 && m->kids[i].pid)
            kill(m->kids[i].pid, SIGTERM);
    int64_t deadline = s_mono_ms() + m->drain_ms + 3000;
    while (true) {
        s_reap(m, true);
        bool alive = false;
        for (int i = 0; i < m->nkids; i++)
            alive |= strcmp(m->kids[i].stage, stage) == 0 && m->kids[i].pid;
        if (!alive)
            return;
        if (s_mono_ms() > deadline) {
            for (int i = 0; i < m->nkids; i++)
                if (strcmp(m->kids[i].stage, stage) == 0 && m->kids[i].pid) {
                    log_warn("%s did not stop in time: SIGKILL (its journal keeps what it had)", m->kids[i].inst);
                    kill(m->kids[i].pid, SIGKILL);
                }
            deadline = s_mono_ms() + 5000;
        }
        usleep(20000);
    }
}

/* s_wait_ready - the parent of up -d: the master's one line ("ready" or
 * "not ready ...") on fd, or its end; the exit status */
static int s_wait_ready(int fd, const char *logp)
{
    char line[1024];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof line - 1 && (r = read(fd, line + n, sizeof line - 1 - n)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        n += (size_t) r;
        if (memchr(line, '\n', n))
            break;
    }
    line[n] = '\0';
    line[strcspn(line, "\n")] = '\0';
    if (strncmp(line, "ready", 5) == 0) {
        printf("payguard: %s\n", line);
        fflush(stdout);
        return 0;
    }
    if (n)
        fprintf(stderr, "payguard: %s (the group keeps running: payguard status; payguard down)\n", line);
    else
        fprintf(stderr, "payguard: the master stopped before the group was ready: see %s\n", logp);
    return 1;
}

/* s_daemonize - detach, with stdout/stderr into run_dir/payguard.log; the
 * parent returns once the group is ready (s_ready_tick) or is not in time */
static int s_daemonize(master_t *m)
{
    char logp[CONFIG_PATH_MAX + 32];
    snprintf(logp, sizeof logp, "%s/payguard.log", config_run_dir(m->config));
    int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    int p[2];
    if (fd < 0 || pipe2(p, O_CLOEXEC) != 0) {
        fprintf(stderr, "payguard: cannot open %s: %s\n", logp, strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        close(p[1]);
        _exit(s_wait_ready(p[0], logp));
    }
    close(p[0]);
    m->ready_fd = p[1];
    setsid();
    int nul = open("/dev/null", O_RDONLY);
    dup2(nul, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    close(nul);
    close(fd);
    return 0;
}

/* s_port_answers - does host:port accept a TCP connection within 200 ms? */
static bool s_port_answers(const char *host, long port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
    if (!host || !*host || strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    bool ok = connect(fd, (struct sockaddr *) &sin, sizeof sin) == 0;
    if (!ok && errno == EINPROGRESS) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof err;
        ok = poll(&pfd, 1, 200) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    }
    close(fd);
    return ok;
}

/* s_child_ready - is k ready? A stage: its status file is its current
 * process's and says ready=yes (stage_ready); the sandbox and the console:
 * their port answers. false and why otherwise. */
static bool s_child_ready(master_t *m, const child_t *k, char *why, size_t whylen)
{
    if (!k->pid) {
        snprintf(why, whylen, "%s is not running (restarting)", k->inst);
        return false;
    }
    if (config_stage_index(k->stage) < 0) {
        char key[64], bind[64];
        long port = 0;
        bool sbx = strcmp(k->stage, "sandbox") == 0;
        snprintf(key, sizeof key, "%s/%s", k->stage, sbx ? "port" : "http_port");
        snprintf(bind, sizeof bind, "%s/%s", k->stage, sbx ? "bind" : "http_bind");
        port = atol(config_get(m->config, key) ? config_get(m->config, key) : "0");
        if (s_port_answers(config_get(m->config, bind), port))
            return true;
        snprintf(why, whylen, "%s does not answer on port %ld yet", k->inst, port);
        return false;
    }
    char path[CONFIG_PATH_MAX + 64], text[4096] = "", reason[256];
    snprintf(path, sizeof path, "%s/%s.stat", config_run_dir(m->config), k->inst);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = '\0';
    if (f)
        fclose(f);
    stage_readiness_t r = stage_status_ready(text, (int) k->pid, reason, sizeof reason);
    if (r == STAGE_READY)
        return true;
    if (r == STAGE_STARTING)
        snprintf(why, whylen, "%s is starting (recovering its state)", k->inst);
    else
        snprintf(why, whylen, "%s is not ready: %s", k->inst, reason);
    return false;
}

/* s_ready_tick - up -d: a few times a second until every process is ready,
 * or payguard/ready_timeout_s has passed; then one line to the waiting
 * parent, and the pipe closed */
static void s_ready_tick(master_t *m, int64_t now)
{
    if (m->ready_fd < 0 || now - m->ready_checked_ms < 250)
        return;
    m->ready_checked_ms = now;
    char why[512] = "", line[640];
    bool all = true;
    for (int i = 0; i < m->nkids && all; i++)
        all = s_child_ready(m, &m->kids[i], why, sizeof why);
    if (all)
        snprintf(line, sizeof line, "ready: %d processes, run %s\n", m->nkids, config_run_dir(m->config));
    else if (now >= m->ready_deadline_ms)
        snprintf(line, sizeof line, "not ready after payguard/ready_timeout_s: %s\n", why);
    else
        return;
    if (write(m->ready_fd, line, strlen(line)) < 0)
        log_warn("cannot tell the waiting payguard up -d: %s", strerror(errno));
    log_info("%.*s", (int) strlen(line) - 1, line);
    close(m->ready_fd);
    m->ready_fd = -1;
}

/* s_lock_pidfile - one master per run_dir; -1 if one already runs */
static int s_lock_pidfile(master_t *m)
{
    char path[CONFIG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/master.pid", config_run_dir(m->config));
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "payguard: already running (%s is locked)\n", path);
        return -1;
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d\n", (int) getpid());
    if (ftruncate(fd, 0) != 0 || write(fd, buf, (size_t) n) != n)
        return -1;
    return fd; /* kept open: the lock lives as long as we do */
}

/* s_find_bindir - stage binaries live beside the payguard binary */
static void s_find_bindir(master_t *m)
{
    ssize_t n = readlink("/proc/self/exe", m->bindir, sizeof m->bindir - 1);
    m->bindir[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(m->bindir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(m->bindir, sizeof m->bindir, ".");
}

/* cmd_up - `payguard up [-c FILE] [-d]`: run the group until SIGTERM */
int cmd_up(int argc, char **argv)
{
    const char *cfg = NULL;
    bool daemon = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            cfg = argv[++i];
        else if (strcmp(argv[i], "-d") == 0 || strcmp(argv[i], "--daemon") == 0)
            daemon = true;
        else {
            fprintf(stderr, "usage: payguard up [-c CONFIG] [-d] [--host NAME]\n");
            return 2;
        }
    }
    static master_t m;
    m.cfg_path = cfg;
    m.ready_fd = -1;
    sdnotify_forget(); /* its children are not what systemd started: they must not notify it */
    if (cli_load_config(cfg, &m.config) != 0)
        return 2;
    if (config_multi_host(m.config) && !config_host(m.config)) {
        fprintf(stderr, "payguard: the configuration spreads the group over hosts: say which this is (--host NAME)\n");
        return 2;
    }
    char err[1024];
    long ready_s;
    if (config_bounded(m.config, "payguard/restart_max_ms", &m.restart_max_ms, err, sizeof err) ||
        config_bounded(m.config, "payguard/drain_ms", &m.drain_ms, err, sizeof err) ||
        config_bounded(m.config, "payguard/ready_timeout_s", &ready_s, err, sizeof err)) {
        fprintf(stderr, "payguard: %s\n", err);
        return 2;
    }
    const char *dirs[2] = {config_run_dir(m.config), config_data_dir(m.config)};
    for (int i = 0; i < 2; i++)
        if (mkdir(dirs[i], i == 0 ? 0700 : 0750) != 0 && errno != EEXIST) {
            fprintf(stderr, "payguard: cannot create %s: %s\n", dirs[i], strerror(errno));
            return 1;
        }
    /* the run directory holds the ipc sockets: private to the service user,
     * so no other local user can push events into a stage */
    if (chmod(dirs[0], 0700) != 0) {
        fprintf(stderr, "payguard: cannot make %s private (mode 0700): %s\n", dirs[0], strerror(errno));
        return 1;
    }
    if (layout_check(m.config, err, sizeof err) != 0) { /* state split as the config routes? (layout.h) */
        fprintf(stderr, "payguard: %s\n", err);
        return 2;
    }
    int running = cli_master_pid(m.config);
    if (running) {
        fprintf(stderr, "payguard: already running (master pid %d, run_dir %s)\n", running, config_run_dir(m.config));
        return 1;
    }
    if (s_bind_ports(&m, err, sizeof err) != 0) {
        fprintf(stderr, "payguard: %s\n", err);
        return 1;
    }
    s_find_bindir(&m);
    if (daemon && s_daemonize(&m) != 0)
        return 1;
    log_init("master", config_get(m.config, "payguard/log_level"), config_get(m.config, "payguard/log_format"));
    if (s_lock_pidfile(&m) < 0)
        return 1;

    /* the sandbox of the outside systems first, when configured */
    bool sandbox =
        strcmp(config_get(m.config, "sandbox/enabled"), "yes") == 0 && config_runs_here(m.config, "sandbox", 0);
    if (sandbox)
        s_add_child(&m, "sandbox", "pg-sandbox", 0);
    /* consumers first, so every producer finds its consumer listening */
    for (int s = CONFIG_NSTAGES - 1; s >= 0; s--) {
        int n = config_instances(m.config, config_stages[s]);
        for (int i = 0; i < n; i++)
            if (config_runs_here(m.config, config_stages[s], i)) /* this host's share (config.h, HOSTS) */
                s_add_child(&m, config_stages[s], config_stages[s], i);
    }
    /* the console last: it passes people's calls on to approve and audit */
    bool console =
        strcmp(config_get(m.config, "console/enabled"), "yes") == 0 && config_runs_here(m.config, "console", 0);
    if (console)
        s_add_child(&m, "console", "console", 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, &m.old_mask);
    if (catchup_job_init(&m.job, m.config, m.bindir, cfg, &m.old_mask, err, sizeof err) != 0)
        log_error("catch-up: %s: no periodic catch-up", err);
    if (!config_runs_here(m.config, "ingest", 0)) /* one host runs it: the one of ingest.0 */
        m.job.every_s = 0;
    for (int i = 0; i < m.nkids; i++)
        s_spawn(&m, &m.kids[i]);
    log_info("payguard up: %d processes, config %s, run %s, data %s", m.nkids, cfg ? cfg : "(embedded defaults)",
             config_run_dir(m.config), config_data_dir(m.config));
    s_write_state(&m);

    int64_t last_state = s_mono_ms();
    m.ready_deadline_ms = last_state + ready_s * 1000;
    while (true) {
        struct timespec to = {0, 100 * 1000000L};
        int sig = sigtimedwait(&set, NULL, &to);
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
            break;
        s_reap(&m, false);
        int64_t now = s_mono_ms();
        for (int i = 0; i < m.nkids; i++)
            if (!m.kids[i].pid && m.kids[i].restart_at_ms && now >= m.kids[i].restart_at_ms)
                s_spawn(&m, &m.kids[i]);
        catchup_job_tick(&m.job, now);
        s_ready_tick(&m, now);
        if (now - last_state >= 1000 || sig == SIGCHLD) {
            s_write_state(&m);
            last_state = now;
        }
    }
    catchup_job_stop(&m.job);
    if (console)
        s_stop_stage(&m, "console");
    log_info("stopping in order: ingest first, audit last");
    for (int s = 0; s < CONFIG_NSTAGES; s++) {
        s_stop_stage(&m, config_stages[s]);
        s_write_state(&m);
    }
    if (sandbox)
        s_stop_stage(&m, "sandbox");
    log_info("payguard down: every stage stopped");
    char path[CONFIG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/master.state", config_run_dir(m.config));
    unlink(path);
    snprintf(path, sizeof path, "%s/master.pid", config_run_dir(m.config));
    unlink(path);
    config_destroy(&m.config);
    return 0;
}

/* cli_master_pid - see cli.h */
int cli_master_pid(const config_t *c)
{
    char path[CONFIG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/master.pid", config_run_dir(c));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    /* a lock we can take means nobody holds it: a stale file */
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
        close(fd);
        return 0;
    }
    char buf[32] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n > 0 ? atoi(buf) : 0;
}

/* cmd_down - `payguard down [-c FILE]`: stop the group in order and wait */
int cmd_down(int argc, char **argv)
{
    const char *cfg = cli_opt_config(argc, argv);
    config_t *c;
    if (cli_load_config(cfg, &c) != 0)
        return 2;
    pid_t pid = cli_master_pid(c);
    if (!pid) {
        printf("payguard is not running (no master in %s)\n", config_run_dir(c));
        config_destroy(&c);
        return 0;
    }
    kill(pid, SIGTERM);
    printf("stopping payguard (master pid %d)...\n", (int) pid);
    fflush(stdout);
    for (int i = 0; i < 1200 && kill(pid, 0) == 0; i++)
        usleep(50000);
    bool gone = kill(pid, 0) != 0;
    printf(gone ? "stopped\n" : "master still running after 60 s\n");
    config_destroy(&c);
    return gone ? 0 : 1;
}

/* s_stat_value - one key=value from a stage's .stat file */
static long long s_stat_value(const char *text, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, key, kl) == 0 && p[kl] == '=')
            return atoll(p + kl + 1);
    return -1;
}

/* s_print_outside - a stage's outside systems, from its status file's
 * "outside_<system>=<breaker> inflight=N queued=M" lines */
static void s_print_outside(const char *text)
{
    for (const char *l = strstr(text, "outside_"); l; l = strstr(l + 1, "\noutside_")) {
        if (*l == '\n')
            l++;
        char name[32], breaker[16];
        unsigned long inflight, queued;
        if (sscanf(l, "outside_%31[^=]=%15s inflight=%lu queued=%lu", name, breaker, &inflight, &queued) == 4)
            printf("    %-10s breaker %-9s %5lu in flight %5lu queued\n", name, breaker, inflight, queued);
    }
}

/* s_print_waiting - why a stage takes no input, from its status file's
 * "waiting=<why>" line (a nearly full disk) */
static void s_print_waiting(const char *text)
{
    const char *l = strncmp(text, "waiting=", 8) == 0 ? text : strstr(text, "\nwaiting=");
    if (!l)
        return;
    l += *l == '\n' ? 9 : 8;
    printf("    waiting: %.*s\n", (int) strcspn(l, "\n"), l);
}

/* s_print_not_ready - why a stage is not ready, from its status file's
 * "ready=no: <why>" line (stage_ready) */
static void s_print_not_ready(const char *text)
{
    const char *l = strstr(text, "\nready=no: ");
    if (l)
        printf("    not ready: %.*s\n", (int) strcspn(l + 11, "\n"), l + 11);
}

/* cmd_status - `payguard status [-c FILE]`: each process, pid, uptime, restarts, queues */
int cmd_status(int argc, char **argv)
{
    const char *cfg = cli_opt_config(argc, argv);
    config_t *c;
    if (cli_load_config(cfg, &c) != 0)
        return 2;
    pid_t mpid = cli_master_pid(c);
    if (!mpid) { /* under systemd there is none: each instance is a unit (units_cmd.c) */
        printf("payguard is not running under a master (none in %s; under systemd: systemctl status payguard.target "
               "'payguard-*')\n",
               config_run_dir(c));
        config_destroy(&c);
        return 3;
    }
    char path[CONFIG_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/master.state", config_run_dir(c));
    FILE *f = fopen(path, "r");
    printf("master pid %d, run %s\n", (int) mpid, config_run_dir(c));
    printf("%-12s %8s %9s %8s %10s %10s %8s %8s %10s\n", "INSTANCE", "PID", "UPTIME", "RESTARTS", "IN", "OUT",
           "UNACKED", "TO-AUDIT", "JOURNAL");
    char inst[64];
    int pid;
    long long started;
    unsigned restarts;
    long long now = (long long) time(NULL);
    while (f && fscanf(f, "%63s %d %lld %u", inst, &pid, &started, &restarts) == 4) {
        char sp[CONFIG_PATH_MAX + 64], text[4096] = "";
        snprintf(sp, sizeof sp, "%s/%s.stat", config_run_dir(c), inst);
        FILE *s = fopen(sp, "r");
        if (s) {
            size_t n = fread(text, 1, sizeof text - 1, s);
            text[n] = '\0';
            fclose(s);
        }
        char up[32] = "-";
        if (pid)
            snprintf(up, sizeof up, "%llds", now - started);
        /* the sandbox is no stage: it has no counters to show */
        char cols[5][24];
        const char *keys[5] = {"in", "out", "unacked_next", "unacked_audit", "journal_seq"};
        for (int k = 0; k < 5; k++) {
            long long v = s_stat_value(text, keys[k]);
            if (v < 0)
                snprintf(cols[k], sizeof cols[k], "-");
            else
                snprintf(cols[k], sizeof cols[k], "%lld", v);
        }
        printf("%-12s %8s %9s %8u %10s %10s %8s %8s %10s\n", inst,
               pid ? (snprintf(sp, sizeof sp, "%d", pid), sp) : "down", up, restarts, cols[0], cols[1], cols[2],
               cols[3], cols[4]);
        if (pid) {
            s_print_waiting(text);
            s_print_not_ready(text);
            s_print_outside(text);
        }
    }
    if (f)
        fclose(f);
    catchup_job_print_status(config_run_dir(c));
    config_destroy(&c);
    return 0;
}
