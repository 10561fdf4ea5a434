// skiff_test_upstream: a TestServer in its own process, for tests that kill their upstream
// (SIGKILL closes its sockets without any HTTP/2 goodbye).
//
//   skiff_test_upstream [ID]
//
// Logs "test upstream listening on 127.0.0.1:PORT" to stderr, then "test upstream: call
// METHOD" as each call starts, and serves until killed (SIGTERM/SIGINT: exit 0).
#include <signal.h>

#include <cstdlib>
#include <iostream>

#include "test_server.h"

int main(int argc, char** argv) {
  const int id = argc > 1 ? std::atoi(argv[1]) : 0;
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  skiff::it::TestServer server(id);
  server.log_calls(true);
  std::cerr << "test upstream listening on " << server.address() << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  return 0;
}
