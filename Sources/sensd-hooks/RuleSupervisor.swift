import Logging
import SENSClient
import SENSHooks
import ServiceLifecycle
import Systemd
import UnixSignals

/// The rule files as loaded: the rules with their accounts, and the mistakes.
struct LoadedRules: Sendable {
    var rules: [(HookRule, Account?)]
    var errors: [RuleError]
    var masked: [String]
}

/// The first service of the runner's group: it adds a ``RuleService`` per rule, tells systemd it is ready,
/// and on SIGHUP reads the rule files again: a rule that is gone or changed is retired (its running command
/// let finish), a new or changed one added; an unchanged one goes on where it is. It ends at the group's
/// graceful shutdown.
struct RuleSupervisor: Service {
    let group: ServiceGroup
    let load: @Sendable () -> LoadedRules
    let client: SensdClient
    let stateDirectory: String
    let executor: Executor
    let shutdown: Shutdown

    func run() async throws {
        var services: [String: RuleService] = [:]
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        await apply(&services)
        ServiceManager.notify("READY=1")
        for await _ in hangups.cancelOnGracefulShutdown() {
            ServiceManager.notify("RELOADING=1")
            await apply(&services)
            ServiceManager.notify("READY=1")
        }
        shutdown.begin()
    }

    private func apply(_ services: inout [String: RuleService]) async {
        let loaded = load()
        for error in loaded.errors {
            log.error("\(error); the rule is left out", metadata: ["hook_file": "\(error.path)"])
        }
        let wanted = Dictionary(loaded.rules.map { ($0.0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for (name, service) in services where wanted[name].map({ $0.0 != service.rule || $0.1 != service.account }) ?? true {
            await service.retire()
            services[name] = nil
        }
        for (name, (rule, account)) in wanted.sorted(by: { $0.key < $1.key }) where services[name] == nil {
            let service = RuleService(rule: rule, account: account, client: client, stateDirectory: stateDirectory,
                                      executor: executor, shutdown: shutdown)
            services[name] = service
            // A rule's service ends when retired: the group lets it go.
            await group.addServiceUnlessShutdown(ServiceGroupConfiguration.ServiceConfiguration(service: service, successTerminationBehavior: .ignore, failureTerminationBehavior: .ignore))
        }
        let count = services.count
        let status = "\(count) rule\(count == 1 ? "" : "s")"
            + (loaded.errors.isEmpty ? "" : ", \(loaded.errors.count) mistake\(loaded.errors.count == 1 ? "" : "s") in rule files")
        log.notice("rules loaded: \(status) (\(services.keys.sorted().joined(separator: " ")))")
        ServiceManager.notify("STATUS=\(status)")
    }
}
