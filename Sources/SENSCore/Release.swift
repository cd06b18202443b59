/// This release of sensd and sensctl. Bumped whenever behaviour changes, so that a package upgrade is one
/// (docs/upgrades.md); the Makefile reads it for the package version.
package enum Release {
    public static let version = "0.2.0"
}
