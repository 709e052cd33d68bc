/**
 * The partition of incoming/ among daemons sharing one spool (--shared).
 *
 * Every daemon reads incoming/ in the same directory order, so without a
 * partition two daemons race for the same names: in a 20,000-message drain
 * on ext4 the loser's rename failed about 27,000 times, more than once per
 * message, and two daemons drained slower than one. Each message id is
 * therefore first the claim of one daemon, by a hash of the id over the live
 * owners in a fixed order; the others leave it alone unless their own part
 * has run out (incoming-scan.ts), so a dead, stalled or busy peer's part is
 * still delivered. Claims stay correct whatever the partition: the rename
 * decides, and owners that disagree for a beat (a peer joining or dying)
 * cost only missed claims.
 */
export class Partition {
  private rank = 0;
  private size = 1;

  /** `owner`: this daemon's id in a shared spool; null alone, when every id is ours. */
  constructor(private readonly owner: string | null) {}

  /** The owners of the live leases now, this daemon's among them or not. Whether the partition changed. */
  peers(owners: Iterable<string>): boolean {
    if (this.owner === null) return false;
    const all = [...new Set([...owners, this.owner])].sort();
    const rank = all.indexOf(this.owner);
    if (rank === this.rank && all.length === this.size) return false;
    this.rank = rank;
    this.size = all.length;
    return true;
  }

  /** How many daemons incoming/ is split among (1 alone). */
  get parts(): number {
    return this.size;
  }

  /** Whether this daemon is the first to claim `id`. */
  mine(id: string): boolean {
    return this.size === 1 || fnv1a(id) % this.size === this.rank;
  }
}

/** FNV-1a, 32 bits: cheap, and spreads ids that differ in their last characters (a producer's counter). */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
