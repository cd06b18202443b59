import Testing
import SENSCore
@testable import SensdService

/// The door's rules without a socket: the numbers the hostile-user e2e tests reach with real connections
/// (64 per user, 188 of 200 for ordinary users together, root and adm past both), one connection at a time.
@Suite("Who may connect: the total, the share kept for administrators, and the per-user cap")
struct AdmissionQuotaTests {
    let limits = SubscriberLimits(maxSubscribers: 10, maxPerUser: 3, reservedForAdministrators: 2, administratorGroups: [4])
    let mallory = Peer(uid: 1001, gid: 1001, groups: [])
    let eve = Peer(uid: 1002, gid: 1002, groups: [100])
    let root = Peer(uid: 0, gid: 0, groups: [])
    let admin = Peer(uid: 1003, gid: 1003, groups: [4])

    /// Lets `peer` in as long as the quota allows; the refusal that stopped it.
    func fill(_ quota: inout AdmissionQuota, with peer: Peer, upTo n: Int) -> (ProtocolError, Int)? {
        for _ in 0..<n {
            if let refusal = quota.refusal(for: peer) { return refusal }
            quota.admit(peer)
        }
        return nil
    }

    @Test func oneUserStopsAtHerCapAndTheRefusalNamesItAndHerUid() throws {
        var quota = AdmissionQuota(limits: limits)
        let refusal = try #require(fill(&quota, with: mallory, upTo: 10))
        #expect(quota.held(by: mallory.uid) == 3 && quota.admitted == 3)
        #expect(refusal.0.code == .tooManySubscribers && refusal.1 == 3)
        #expect(refusal.0.message.contains("uid 1001") && refusal.0.message.contains("3"), "\(refusal.0.message)")
        #expect(quota.refusal(for: eve) == nil, "another user is not held back by her")
    }

    @Test func ordinaryUsersTogetherLeaveTheReservedShareToRootAndTheAdministratorsGroups() throws {
        var quota = AdmissionQuota(limits: limits)
        var refusal: (ProtocolError, Int)?
        for uid in UInt32(2000)..<2010 where refusal == nil {
            refusal = fill(&quota, with: Peer(uid: uid, gid: uid, groups: []), upTo: 3)
        }
        let (error, limit) = try #require(refusal)
        #expect(quota.admitted == 8 && limit == 8, "10 less the 2 kept back")
        #expect(error.message.contains("8") && error.message.contains("2 more are kept"), "\(error.message)")
        #expect(quota.refusal(for: root) == nil)
        #expect(quota.refusal(for: admin) == nil, "a supplementary group counts")
        #expect(quota.refusal(for: Peer(uid: 1004, gid: 4, groups: [])) == nil, "so does the primary group")
        quota.admit(root)
        quota.admit(admin)
        let full = try #require(quota.refusal(for: root))
        #expect(full.1 == 10 && full.0.message.contains("at most 10"), "root too stops at the total")
    }

    @Test func aConnectionThatLeavesGivesItsPlaceBackToItsUser() {
        var quota = AdmissionQuota(limits: limits)
        _ = fill(&quota, with: mallory, upTo: 3)
        #expect(quota.refusal(for: mallory) != nil)
        quota.left(uid: mallory.uid)
        #expect(quota.refusal(for: mallory) == nil && quota.admitted == 2 && quota.held(by: mallory.uid) == 2)
        quota.left(uid: mallory.uid)
        quota.left(uid: mallory.uid)
        #expect(quota.admitted == 0 && quota.held(by: mallory.uid) == 0)
    }
}
