"""A seeded E2E-style data set: restaurant meaning representations -> one-sentence descriptions.

The E2E NLG challenge pairs a meaning representation (MR) such as `name[The Eagle],
eatType[coffee shop], food[French]` with a human sentence. Generated records have its shape: a
random subset of the E2E slots and a templated sentence, about 20-70 BPE tokens.

    python -c "from benchlab.long_exposure.e2e import e2e_records; print(e2e_records(2))"
"""

import json
import random
from pathlib import Path

NAMES = ["The Eagle", "The Mill", "Alimentum", "Aromi", "Bibimbap House", "Blue Spice",
         "Clowns", "Cocum", "Cotto", "Fitzbillies", "Giraffe", "Green Man", "Loch Fyne",
         "Midsummer House", "Strada", "Taste of Cambridge", "The Cricketers", "The Golden Curry",
         "The Phoenix", "The Punter", "The Rice Boat", "Travellers Rest Beefeater", "Wildwood",
         "Zizzi", "The Vaults", "The Waterman", "The Plough", "The Olive Grove"]
EAT_TYPES = ["restaurant", "coffee shop", "pub"]
FOODS = ["French", "Italian", "Chinese", "Japanese", "Indian", "English", "Fast food"]
PRICES = ["cheap", "moderate", "high", "less than £20", "£20-25", "more than £30"]
RATINGS = ["low", "average", "high", "1 out of 5", "3 out of 5", "5 out of 5"]
AREAS = ["riverside", "city centre"]
NEAR = ["Burger King", "Café Rouge", "The Bakers", "Raja Indian Cuisine", "Express by Holiday Inn",
        "Crowne Plaza Hotel", "Yippee Noodle Bar", "Ranch", "All Bar One", "Avalon"]
VALUES = {"eatType": EAT_TYPES, "food": FOODS, "priceRange": PRICES, "customer rating": RATINGS,
          "area": AREAS, "familyFriendly": ["yes", "no"], "near": NEAR}
SLOTS = list(VALUES)


def _mr(rng: random.Random) -> dict:
    slots = {"name": rng.choice(NAMES)}
    for slot in rng.sample(SLOTS, rng.randint(2, len(SLOTS))):
        slots[slot] = rng.choice(VALUES[slot])
    return slots


def _sentence(mr: dict, rng: random.Random) -> str:
    """Realise the MR as one or two sentences; clause order and wording vary with `rng`."""
    kind = mr.get("eatType", "place")
    food = mr.get("food")
    head = f"{mr['name']} is a{'n' if (food or kind)[0] in 'AEIOUaeiou' else ''} "
    head += f"{food} {kind}" if food else kind
    clauses = []
    if "priceRange" in mr:
        clauses.append(rng.choice([f"with {mr['priceRange']} prices",
                                   f"in the {mr['priceRange']} price range"]))
    if "customer rating" in mr:
        clauses.append(rng.choice([f"rated {mr['customer rating']} by customers",
                                   f"with a {mr['customer rating']} customer rating"]))
    if "area" in mr:
        clauses.append(rng.choice([f"in the {mr['area']} area", f"located in the {mr['area']}"]))
    if "near" in mr:
        clauses.append(rng.choice([f"near {mr['near']}", f"close to {mr['near']}"]))
    rng.shuffle(clauses)
    text = head + (" " + ", ".join(clauses) if clauses else "") + "."
    if "familyFriendly" in mr:
        yes = mr["familyFriendly"] == "yes"
        text += " " + rng.choice(["It is family friendly." if yes else "It is not family friendly.",
                                  "Children are welcome." if yes else "It is adults only."])
    return text


def e2e_records(n: int, seed: int = 0) -> list[dict]:
    """`n` records {"meaning_representation": "name[..], ...", "human_reference": "..."}."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        mr = _mr(rng)
        out.append({"meaning_representation": ", ".join(f"{k}[{v}]" for k, v in mr.items()),
                    "human_reference": _sentence(mr, rng)})
    return out


def write_e2e_jsonl(path, n: int, seed: int = 0) -> Path:
    """Write `n` seeded records to `path` (one JSON object a line); refuses to overwrite."""
    path = Path(path)
    if path.exists():
        from benchlab.core.errors import BenchlabError

        raise BenchlabError(f"{path}: already exists; not overwriting")
    from benchlab.core.store import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                               for r in e2e_records(n, seed)))
    return path


def record_text(rec) -> str:
    """The training text of one record (a zoo.data.Record or a raw JSONL dict): MR, a
    separator, the sentence."""
    if isinstance(rec, dict):
        from benchlab.zoo.data import to_record

        rec = to_record(rec)
    return f"{rec.prompt} => {rec.target}"
