/* upper_server.c: a request/answer server written as an outside program would be: plain C,
 * built against an installed xtcp (from xtcp it includes only <xtcp/xtcp.h>; Makefile uses
 * pkg-config, CMakeLists.txt uses find_package). Each line a client sends comes back in
 * upper case, and the ACK of the line rides on that answer (xtcp_send's ackd).
 *
 *   upper_server TUN ADDR KERNEL_ADDR/PREFIX PORT [SECONDS]
 */
#define _POSIX_C_SOURCE 200809L

#include <xtcp/xtcp.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_LINE 4096

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static int usage(const char* why) {
  fprintf(stderr, "upper_server: %s\nusage: upper_server TUN ADDR KERNEL_ADDR/PREFIX PORT [SECONDS]\n", why);
  return 2;
}

static int fail(const char* call, int rc) {
  fprintf(stderr, "upper_server: %s: %s\n", call, strerror(-rc));
  return 1;
}

/* Answers every whole line in buf[0..n) (the group frames on '\n', so all of it), and
 * acknowledges exactly those bytes with the answer. */
static void answer(int gd, int cd, const char* buf, int n, unsigned long* lines) {
  char out[MAX_LINE + 1];
  int i;
  int rc;
  for (i = 0; i < n; ++i) {
    out[i] = (buf[i] >= 'a' && buf[i] <= 'z') ? (char)(buf[i] - 'a' + 'A') : buf[i];
    if (buf[i] == '\n') {
      ++*lines;
    }
  }
  rc = xtcp_send(gd, cd, (size_t)n, out, (size_t)n);
  if (rc == -EAGAIN || (rc >= 0 && rc < n)) {
    /* The shared transmit cache is full: a client that does not read is dropped. */
    fprintf(stderr, "upper_server: connection %d: answer cut short (%d of %d bytes); closing\n",
            cd, rc < 0 ? 0 : rc, n);
    xtcp_close(gd, cd);
  }
}

int main(int argc, char** argv) {
  struct xtcp_config config;
  struct xtcp_pool_stats stats;
  struct sigaction sa;
  char buf[MAX_LINE];
  unsigned long accepted = 0;
  unsigned long lines = 0;
  long seconds = 0;
  long port;
  time_t start;
  char* end = NULL;
  int gd;
  int rc;

  if (argc < 5 || argc > 6) {
    return usage("expected 4 or 5 arguments");
  }
  port = strtol(argv[4], &end, 10);
  if (*argv[4] == '\0' || *end != '\0' || port < 1 || port > 65535) {
    return usage("PORT must be 1..65535");
  }
  if (argc == 6) {
    seconds = strtol(argv[5], &end, 10);
    if (*argv[5] == '\0' || *end != '\0' || seconds < 1) {
      return usage("SECONDS must be a positive number");
    }
  }

  memset(&config, 0, sizeof config);
  config.tun_name = argv[1];
  config.local_addr = argv[2];
  config.kernel_addr = argv[3];
  rc = xtcp_configure(&config);
  if (rc < 0) {
    return rc == -EINVAL ? usage("bad TUN name or address") : fail("xtcp_configure", rc);
  }
  rc = xtcp_initialize(1u << 20);
  if (rc < 0) {
    return fail("xtcp_initialize", rc);
  }
  gd = xtcp_open_group(PF_INET, SOCK_STREAM, 0, (uint16_t)port);
  if (gd < 0) {
    xtcp_finalize();
    return fail("xtcp_open_group", gd);
  }
  if ((rc = xtcp_setopt(gd, XTCP_OPT_FRAMING, XTCP_FRAME_DELIMITER)) < 0 ||
      (rc = xtcp_setopt(gd, XTCP_OPT_DELIMITER, '\n')) < 0 ||
      (rc = xtcp_setopt(gd, XTCP_OPT_MAX_MESSAGE, MAX_LINE)) < 0) {
    xtcp_finalize();
    return fail("xtcp_setopt", rc);
  }

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  printf("upper_server: %s:%ld on %s\n", argv[2], port, argv[1]);
  fflush(stdout);

  start = time(NULL);
  while (!stop_requested && (seconds == 0 || time(NULL) - start < seconds)) {
    xtcp_set readable;
    xtcp_set acceptable;
    struct timeval tv = {0, 100000};
    int round;
    XTCP_ZERO(&readable);
    XTCP_ZERO(&acceptable);
    XTCP_SET(gd, &readable);
    XTCP_SET(gd, &acceptable);
    rc = xtcp_select(gd + 1, &readable, &acceptable, &tv);
    if (rc == -EINTR) {
      continue; /* a signal: the loop condition looks at stop_requested */
    }
    if (rc < 0) {
      fail("xtcp_select", rc);
      break;
    }
    if (rc > 0 && XTCP_ISSET(gd, &acceptable)) {
      for (round = 0; round < 1024 && xtcp_accept(gd) > 0; ++round) {
        ++accepted;
      }
    }
    if (rc > 0 && XTCP_ISSET(gd, &readable)) {
      for (round = 0; round < 4096; ++round) {
        int cd = -1;
        int n = xtcp_recv(gd, &cd, buf, sizeof buf);
        if (n > 0) {
          answer(gd, cd, buf, n, &lines);
        } else if (n == -EAGAIN) {
          break;
        } else if (cd > 0) {
          xtcp_close(gd, cd); /* 0: the client's FIN (ours follows); <0: reset or timed out */
        } else {
          break;
        }
      }
    }
  }

  printf("upper_server: %lu connections, %lu lines answered\n", accepted, lines);
  if (xtcp_pool_stats(xtcp_default_pool(), &stats) == 0) {
    printf("acks_on_answers %llu\nacks_alone %llu\nanswers_from_cache %llu\n",
           (unsigned long long)stats.acks_on_answers, (unsigned long long)stats.acks_alone,
           (unsigned long long)stats.answers_from_cache);
  }
  xtcp_close_group(gd);
  xtcp_finalize();
  return 0;
}
