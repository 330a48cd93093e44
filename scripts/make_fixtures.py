#!/usr/bin/env python3
"""Writes the fixture corpus under fixtures/: good documents on distinct topics in
every supported format, and a set of bad files that must fail with clear reasons.

Deterministic: running it twice produces identical bytes. Uses only the standard library.
"""
import os
import sys
import zipfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")

DOCS = {
    "astronomy/black-holes.txt": (
        "Black holes",
        [
            "A black hole is a region of spacetime where gravity is so strong that nothing, not even light, can escape once it crosses the event horizon. The boundary is not a physical surface but a point of no return defined by the escape velocity reaching the speed of light.",
            "Stellar black holes form when a massive star, usually more than twenty times the mass of the Sun, exhausts its nuclear fuel. The core collapses under its own gravity in a supernova, and if the remnant exceeds about three solar masses no known force can halt the collapse.",
            "Supermassive black holes with millions or billions of solar masses sit at the centres of most large galaxies. The one at the centre of the Milky Way, Sagittarius A*, has about four million solar masses and was imaged by the Event Horizon Telescope in 2022.",
            "Black holes are detected indirectly: by the X-rays emitted from gas heated in an accretion disk, by stars orbiting an unseen companion, and since 2015 by gravitational waves recorded by LIGO when two black holes spiral together and merge.",
            "Stephen Hawking predicted that quantum effects near the event horizon make black holes emit faint thermal radiation. Hawking radiation means a black hole slowly loses mass and, over unimaginably long times, may evaporate completely.",
        ],
    ),
    "cooking/sourdough.md": (
        "Baking sourdough bread",
        [
            "Sourdough bread is leavened by a starter, a fermented mixture of flour and water colonised by wild yeast and lactic acid bacteria. The bacteria produce lactic and acetic acids that give the loaf its tangy flavour and help it keep longer.",
            "## Feeding the starter\n\nA healthy starter is fed equal weights of flour and water once or twice a day. It is ready to bake with when it doubles in volume within four to eight hours of a feed and smells pleasantly sour, like yoghurt.",
            "## Mixing and bulk fermentation\n\nMix the flour and most of the water and let the dough rest for an autolyse of thirty minutes before adding starter and salt. During bulk fermentation, perform sets of stretch and folds every half hour to build gluten strength.",
            "## Shaping and proofing\n\nPre-shape the dough into a loose round, rest it, then shape it tightly and place it seam side up in a floured banneton. A slow cold proof in the refrigerator overnight deepens the flavour and makes scoring easier.",
            "## Baking\n\nBake in a preheated Dutch oven at 250 degrees Celsius with the lid on for twenty minutes so the trapped steam lets the loaf spring, then remove the lid and bake until the crust is deep brown.",
        ],
    ),
    "gardening/tomatoes.pdf": (
        "Growing tomatoes",
        [
            "Tomatoes are warm season plants that need at least six to eight hours of direct sunlight a day. Start seeds indoors six weeks before the last frost and transplant the seedlings once night temperatures stay above ten degrees Celsius.",
            "Plant tomato seedlings deeply, burying the stem up to the first true leaves, because the buried stem grows extra roots. Space plants about sixty centimetres apart so air can move between them and foliage dries quickly after rain.",
            "Indeterminate tomato varieties keep growing and fruiting all season and need tall stakes or cages. Pinch out the side shoots, called suckers, that form between the main stem and the leaf branches to focus energy on fruit.",
            "Water tomatoes deeply and regularly at the base of the plant. Irregular watering causes blossom end rot, a dark sunken patch at the bottom of the fruit caused by poor calcium uptake, and also makes ripening fruit split.",
            "Common tomato problems include early blight, late blight and hornworms. Mulching the soil, rotating crops each year and removing infected lower leaves all reduce fungal disease in the vegetable garden.",
        ],
    ),
    "finance/compound-interest.docx": (
        "Compound interest and saving",
        [
            "Compound interest is interest earned on both the original principal and the interest already added to it. Over long periods it makes savings grow exponentially rather than linearly, which is why starting to save early matters so much.",
            "The future value of a deposit is the principal multiplied by one plus the interest rate per period, raised to the number of periods. A deposit of one thousand dollars at five percent annual interest grows to about 1629 dollars after ten years.",
            "The rule of 72 is a quick estimate of how long money takes to double: divide 72 by the annual interest rate in percent. At six percent a year an investment doubles in roughly twelve years.",
            "Compounding frequency matters too. Interest compounded monthly yields slightly more than the same nominal rate compounded annually, and the annual percentage yield expresses the effective rate after compounding.",
            "Compounding also works against borrowers. Credit card debt at twenty percent annual interest, left unpaid, doubles in under four years, so paying off high interest debt is often the best return a saver can get.",
        ],
    ),
    "history/roman-aqueducts.txt": (
        "Roman aqueducts",
        [
            "The ancient Romans built aqueducts to carry fresh water from distant springs and rivers into their cities. The first, the Aqua Appia, was built in 312 BC, and by the third century AD eleven aqueducts supplied the city of Rome.",
            "Roman engineers moved water by gravity alone, so an aqueduct channel had to descend at a steady, very gentle gradient over tens of kilometres. Surveyors used instruments such as the chorobates and the groma to keep the slope constant.",
            "Most of an aqueduct ran underground in covered channels. The famous arched bridges, like the Pont du Gard in southern France, were built only where the channel had to cross a valley at the required height.",
            "Water arrived at a distribution tank, the castellum, which fed public fountains, baths and private houses through lead pipes. Public fountains had priority, and wealthy citizens paid for a private connection.",
            "The aqueducts were maintained by a staff of hundreds of slaves under a water commissioner. Frontinus, appointed curator aquarum in 97 AD, wrote a treatise describing the system and the fraud of illegal taps.",
        ],
    ),
    "biology/honeybees.md": (
        "Honeybee colonies",
        [
            "A honeybee colony is a superorganism of one queen, tens of thousands of female worker bees and, in summer, a few hundred male drones. The queen lays up to two thousand eggs a day during the peak of the season.",
            "## Division of labour\n\nWorker bees change jobs as they age. Young workers clean cells and feed larvae with royal jelly, middle aged workers build wax comb and guard the entrance, and the oldest workers forage for nectar and pollen.",
            "## The waggle dance\n\nA forager that finds a rich patch of flowers returns to the hive and performs the waggle dance. The angle of the dance relative to vertical encodes the direction of the food relative to the sun, and its duration encodes distance.",
            "## Making honey\n\nForagers carry nectar home in their honey stomach. House bees add enzymes that convert sucrose into glucose and fructose, and fan their wings to evaporate water until the honey is thick enough to cap with wax.",
            "## Swarming\n\nIn spring a crowded colony reproduces by swarming: the old queen leaves with about half the workers to found a new nest, while the remaining bees raise a new queen from a specially built queen cell.",
        ],
    ),
    "sports/marathon-training.pdf": (
        "Training for a marathon",
        [
            "A marathon covers 42.195 kilometres, and most training plans for a first marathon last sixteen to twenty weeks. The foundation is a gradual increase in weekly running mileage of no more than about ten percent a week.",
            "The weekly long run is the cornerstone of marathon training. It builds endurance, teaches the body to burn fat, and grows from around fifteen kilometres to a peak of thirty to thirty two kilometres three weeks before race day.",
            "Most training runs should be at an easy conversational pace. Tempo runs at lactate threshold pace and interval sessions on the track add speed, but too much hard running raises the risk of injury and overtraining.",
            "During the race, runners need carbohydrates to avoid hitting the wall, the sudden fatigue when glycogen stores run out. Practise taking energy gels and drinks on long training runs so the stomach is used to them.",
            "The taper reduces mileage over the final two or three weeks so the legs recover and arrive fresh at the start line. Resist the temptation to squeeze in extra long runs during the taper.",
        ],
    ),
    "music/jazz-improvisation.docx": (
        "Jazz improvisation",
        [
            "Jazz improvisation is the spontaneous invention of melody over a repeating chord progression. Players learn the chord changes of a tune, its harmonic road map, so that their improvised lines outline the harmony.",
            "The ii V I progression is the most common cadence in jazz standards. Learning to play scales and arpeggios over minor seventh, dominant seventh and major seventh chords in every key is a core part of practice.",
            "Jazz musicians learn the language by transcribing solos: listening to records of players like Charlie Parker, Miles Davis and John Coltrane and copying their phrases by ear, then playing them in different keys.",
            "Swing feel gives jazz its rhythmic character. Eighth notes are played unevenly, long and short, with accents often on the off beats, and the rhythm section of bass, drums and piano keeps the groove.",
            "Trading fours is a practice in which soloists alternate four bar phrases with the drummer. It builds musical conversation, where each improviser responds to and develops the ideas of the previous one.",
        ],
    ),
}


def write(rel, data: bytes):
    path = os.path.join(ROOT, rel) if isinstance(rel, str) else os.path.join(os.fsencode(ROOT), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def text_document(title, paragraphs, markdown):
    head = f"# {title}\n\n" if markdown else f"{title}\n\n"
    return (head + "\n\n".join(paragraphs) + "\n").encode()


def wrap(text, width=90):
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines


def pdf_document(title, paragraphs):
    """A small, valid PDF: Helvetica text pages with a correct xref table."""
    lines = [title, ""]
    for p in paragraphs:
        lines += wrap(p) + [""]
    pages = [lines[i : i + 45] for i in range(0, len(lines), 45)]

    def esc(s):
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    objects = []  # index 0 -> object 1
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(None)  # pages, filled below
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    kids = []
    for page_lines in pages:
        body = "BT /F1 11 Tf 14 TL 56 780 Td " + " ".join(f"({esc(l)}) Tj T*" for l in page_lines) + " ET"
        stream = body.encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        content_id = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>"
            % content_id
        )
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % k for k in kids) + b"] /Count %d >>" % len(kids)

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def docx_document(title, paragraphs):
    """A minimal Office Open XML word-processing package."""
    from xml.sax.saxutils import escape

    def para(text):
        return f'<w:p><w:r><w:t xml:space="preserve">{escape(text)}</w:t></w:r></w:p>'

    body = para(title) + "".join(para(p) for p in paragraphs)
    document = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body>{body}</w:body></w:document>"
    )
    content_types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
        "</Types>"
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'
        "</Relationships>"
    )
    doc_rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"></Relationships>'
    )
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in (
            ("[Content_Types].xml", content_types),
            ("_rels/.rels", rels),
            ("word/document.xml", document),
            ("word/_rels/document.xml.rels", doc_rels),
        ):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return buf.getvalue()


README = """tidewatch
=========

tidewatch predicts the times and heights of high and low water for a harbour from its
harmonic constituents (M2, S2, N2, K1, O1 and the rest), the way the tide tables printed for
harbour pilots are made.

Usage
-----

    tidewatch predict --station brest --from 2026-03-01 --days 7

prints each high and low water in local time with its height above chart datum. Add
--plot to draw the tidal curve as text, and --spring-neap to mark spring and neap tides,
when the Sun and the Moon pull together or at right angles.

Constituents come from a station file: one line per constituent, its amplitude in metres
and its phase lag in degrees. Predictions are only as good as the station's record; a year
of hourly readings gives the main constituents to a few centimetres.
"""

LICENSE = """Permission is hereby granted, free of charge, to any person obtaining a copy of this
software and associated documentation files, to deal in the software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and sell copies of the software, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED. IN NO
EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY ARISING FROM THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def main():
    for rel, (title, paragraphs) in DOCS.items():
        ext = rel.rsplit(".", 1)[1]
        if ext == "pdf":
            data = pdf_document(title, paragraphs)
        elif ext == "docx":
            data = docx_document(title, paragraphs)
        else:
            data = text_document(title, paragraphs, ext == "md")
        write(rel, data)

    # Bad inputs: each must be recorded as failed with its own reason.
    whole_pdf = pdf_document(*DOCS["gardening/tomatoes.pdf"])
    write("bad/truncated.pdf", whole_pdf[: len(whole_pdf) // 3])
    write("bad/not-a-zip.docx", b"This is plain text pretending to be a Word document.\n")
    write("bad/binary.txt", bytes((i * 37 + 11) % 256 for i in range(4096)))
    write("bad/empty.md", b"")
    write(b"bad/caf\xe9-latin1-name.txt", b"A file whose name is not valid UTF-8.\n")

    # Files without an extension: text ones are indexed, others skipped as not text.
    write("software/README", README.encode())
    write("software/LICENSE", LICENSE.encode())
    elf_header = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00"
    write("bad/tool-binary", elf_header + bytes((i * 53 + 7) % 256 for i in range(2048)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
