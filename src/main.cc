// skiff: argv and signals -> server::run; nothing else.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "base/log.h"
#include "server/server.h"

int main(int argc, char** argv) {
  skiff::server::Options options;
  std::string log_level = "info";
  CLI::App app{"skiff: a gRPC-aware HTTP/2 sidecar proxy"};
  app.set_version_flag("--version", std::string("skiff ") + SKIFF_VERSION);
  app.add_option("-c,--config", options.config_path, "YAML config file")
      ->capture_default_str();
  app.add_flag("--check-config", options.check_only,
               "validate the config, print the result, exit 0 (valid) or 2 (invalid)");
  app.add_option("--workers", options.workers, "worker threads (default: config, else one per core)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : skiff::server::kExitConfigError;
  }
  skiff::base::LogLevel level;
  skiff::base::parse_log_level(log_level, &level);
  skiff::base::init_logging(level);
  return skiff::server::run(options);
}
