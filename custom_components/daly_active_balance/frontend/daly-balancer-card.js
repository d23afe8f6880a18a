/**
 * DALY balancer cells card: every cell of one DALY Smart Active Balance Module as a bar.
 *
 * Plain web components, no build step: Home Assistant loads this file itself (card.py registers
 * it). The card finds the module's entities in the entity registry (hass.entities) by their
 * translation keys, so a renamed entity still counts, and shows each part only when its entity
 * exists. The cells' plausible range comes from the battery type's attributes (the register
 * table's, the same the integration's repair checks).
 */

const DOMAIN = "daly_active_balance";
const CARD = "daly-balancer-card";
const EDITOR = `${CARD}-editor`;
const UNAVAILABLE = new Set(["unavailable", "unknown"]);
/**
 * A trend within this (mV/day) draws a flat arrow: the module reads cells to 1 mV, so over the
 * 7 days the trend is fitted on, a smaller slope is within a reading's step.
 */
const FLAT_MV_PER_DAY = 0.15;

const STRINGS = {
  en: {
    name: "DALY balancer cells",
    description: "Every cell of a DALY active balancer as a bar: lowest and highest marked, the delta, balancing, warnings and faults.",
    pick_device: "Pick a DALY balancer in the card's settings.",
    device_missing: "This DALY balancer is not in Home Assistant any more.",
    unavailable: "{name} is unavailable: no current readings.",
    not_daly: "{name} is not a DALY balancer: pick one in the card's settings.",
    pack: "Pack",
    delta: "Delta",
    turn_on: "turn-on {value}",
    lowest: "Lowest",
    highest: "Highest",
    cell: "Cell {cell}",
    balancing: "Balancing",
    expected: "expected",
    reported: "reported",
    yes: "yes",
    no: "no",
    balancing_cell: "balancing",
    warnings: "Warnings",
    faults: "Faults",
    none: "none",
    active: "active",
    device: "Balancer",
    title: "Title (optional)",
    trend: "Top-of-charge trend",
    trend_up: "growing imbalance",
    trend_down: "converging",
    trend_flat: "steady",
    trend_unknown: "needs 3 days at the top",
    yesterday: "yesterday {value}",
    weakest: "Weakest cell",
    weakest_cell: "weakest cell (most often lowest at the bottom of charge)",
    not_yet: "not yet known",
  },
  de: {
    name: "DALY-Balancer-Zellen",
    description: "Jede Zelle eines DALY-Aktivbalancers als Balken: niedrigste und höchste markiert, Differenz, Balancing, Warnungen und Fehler.",
    pick_device: "Wähle in den Einstellungen der Karte einen DALY-Balancer.",
    device_missing: "Dieser DALY-Balancer ist nicht mehr in Home Assistant.",
    unavailable: "{name} ist nicht verfügbar: keine aktuellen Messwerte.",
    not_daly: "{name} ist kein DALY-Balancer: Wähle in den Einstellungen der Karte einen.",
    pack: "Pack",
    delta: "Differenz",
    turn_on: "Einschaltschwelle {value}",
    lowest: "Niedrigste",
    highest: "Höchste",
    cell: "Zelle {cell}",
    balancing: "Balancing",
    expected: "erwartet",
    reported: "gemeldet",
    yes: "ja",
    no: "nein",
    balancing_cell: "wird ausgeglichen",
    warnings: "Warnungen",
    faults: "Fehler",
    none: "keine",
    active: "aktiv",
    device: "Balancer",
    title: "Titel (optional)",
    trend: "Trend bei Vollladung",
    trend_up: "Ungleichgewicht wächst",
    trend_down: "gleicht sich an",
    trend_flat: "gleichbleibend",
    trend_unknown: "braucht 3 Tage mit Vollladung",
    yesterday: "gestern {value}",
    weakest: "Schwächste Zelle",
    weakest_cell: "schwächste Zelle (am häufigsten die niedrigste bei Entladeende)",
    not_yet: "noch unbekannt",
  },
  fr: {
    name: "Cellules de l'équilibreur DALY",
    description: "Chaque cellule d'un équilibreur actif DALY sous forme de barre : la plus basse et la plus haute marquées, l'écart, l'équilibrage, les avertissements et les défauts.",
    pick_device: "Choisissez un équilibreur DALY dans les paramètres de la carte.",
    device_missing: "Cet équilibreur DALY n'est plus dans Home Assistant.",
    unavailable: "{name} est indisponible : aucune mesure actuelle.",
    not_daly: "{name} n'est pas un équilibreur DALY : choisissez-en un dans les paramètres de la carte.",
    pack: "Pack",
    delta: "Écart",
    turn_on: "démarrage {value}",
    lowest: "Plus basse",
    highest: "Plus haute",
    cell: "Cellule {cell}",
    balancing: "Équilibrage",
    expected: "attendu",
    reported: "signalé",
    yes: "oui",
    no: "non",
    balancing_cell: "en équilibrage",
    warnings: "Avertissements",
    faults: "Défauts",
    none: "aucun",
    active: "actif",
    device: "Équilibreur",
    title: "Titre (facultatif)",
    trend: "Tendance en fin de charge",
    trend_up: "déséquilibre croissant",
    trend_down: "se résorbe",
    trend_flat: "stable",
    trend_unknown: "3 jours de charge complète nécessaires",
    yesterday: "hier {value}",
    weakest: "Cellule la plus faible",
    weakest_cell: "cellule la plus faible (le plus souvent la plus basse en fin de décharge)",
    not_yet: "pas encore connu",
  },
  es: {
    name: "Celdas del balanceador DALY",
    description: "Cada celda de un balanceador activo DALY como una barra: la más baja y la más alta marcadas, la diferencia, el balanceo, las advertencias y los fallos.",
    pick_device: "Elige un balanceador DALY en los ajustes de la tarjeta.",
    device_missing: "Este balanceador DALY ya no está en Home Assistant.",
    unavailable: "{name} no está disponible: no hay lecturas actuales.",
    not_daly: "{name} no es un balanceador DALY: elige uno en los ajustes de la tarjeta.",
    pack: "Pack",
    delta: "Diferencia",
    turn_on: "inicio {value}",
    lowest: "Más baja",
    highest: "Más alta",
    cell: "Celda {cell}",
    balancing: "Balanceo",
    expected: "esperado",
    reported: "informado",
    yes: "sí",
    no: "no",
    balancing_cell: "en balanceo",
    warnings: "Advertencias",
    faults: "Fallos",
    none: "ninguno",
    active: "activo",
    device: "Balanceador",
    title: "Título (opcional)",
    trend: "Tendencia al final de la carga",
    trend_up: "desequilibrio creciente",
    trend_down: "se iguala",
    trend_flat: "estable",
    trend_unknown: "necesita 3 días con carga completa",
    yesterday: "ayer {value}",
    weakest: "Celda más débil",
    weakest_cell: "celda más débil (la más baja con más frecuencia al final de la descarga)",
    not_yet: "aún no se sabe",
  },
  it: {
    name: "Celle del bilanciatore DALY",
    description: "Ogni cella di un bilanciatore attivo DALY come una barra: la più bassa e la più alta evidenziate, la differenza, il bilanciamento, gli avvisi e i guasti.",
    pick_device: "Scegli un bilanciatore DALY nelle impostazioni della scheda.",
    device_missing: "Questo bilanciatore DALY non è più in Home Assistant.",
    unavailable: "{name} non è disponibile: nessuna lettura attuale.",
    not_daly: "{name} non è un bilanciatore DALY: scegline uno nelle impostazioni della scheda.",
    pack: "Pacco",
    delta: "Differenza",
    turn_on: "avvio {value}",
    lowest: "Più bassa",
    highest: "Più alta",
    cell: "Cella {cell}",
    balancing: "Bilanciamento",
    expected: "previsto",
    reported: "segnalato",
    yes: "sì",
    no: "no",
    balancing_cell: "in bilanciamento",
    warnings: "Avvisi",
    faults: "Guasti",
    none: "nessuno",
    active: "attivo",
    device: "Bilanciatore",
    title: "Titolo (facoltativo)",
    trend: "Tendenza a fine carica",
    trend_up: "squilibrio in aumento",
    trend_down: "si riequilibra",
    trend_flat: "stabile",
    trend_unknown: "servono 3 giorni con carica completa",
    yesterday: "ieri {value}",
    weakest: "Cella più debole",
    weakest_cell: "cella più debole (più spesso la più bassa a fine scarica)",
    not_yet: "non ancora noto",
  },
  nl: {
    name: "DALY-balancercellen",
    description: "Elke cel van een actieve DALY-balancer als balk: laagste en hoogste gemarkeerd, het verschil, balanceren, waarschuwingen en storingen.",
    pick_device: "Kies een DALY-balancer in de instellingen van de kaart.",
    device_missing: "Deze DALY-balancer staat niet meer in Home Assistant.",
    unavailable: "{name} is niet beschikbaar: geen actuele metingen.",
    not_daly: "{name} is geen DALY-balancer: kies er een in de instellingen van de kaart.",
    pack: "Accu",
    delta: "Verschil",
    turn_on: "inschakelen {value}",
    lowest: "Laagste",
    highest: "Hoogste",
    cell: "Cel {cell}",
    balancing: "Balanceren",
    expected: "verwacht",
    reported: "gemeld",
    yes: "ja",
    no: "nee",
    balancing_cell: "balanceert",
    warnings: "Waarschuwingen",
    faults: "Storingen",
    none: "geen",
    active: "actief",
    device: "Balancer",
    title: "Titel (optioneel)",
    trend: "Trend bij volle lading",
    trend_up: "onbalans groeit",
    trend_down: "trekt bij",
    trend_flat: "stabiel",
    trend_unknown: "heeft 3 dagen met volle lading nodig",
    yesterday: "gisteren {value}",
    weakest: "Zwakste cel",
    weakest_cell: "zwakste cel (meestal de laagste aan het einde van de ontlading)",
    not_yet: "nog onbekend",
  },
  pl: {
    name: "Ogniwa balansera DALY",
    description: "Każde ogniwo aktywnego balansera DALY jako słupek: najniższe i najwyższe oznaczone, różnica, balansowanie, ostrzeżenia i awarie.",
    pick_device: "Wybierz balanser DALY w ustawieniach karty.",
    device_missing: "Tego balansera DALY nie ma już w Home Assistancie.",
    unavailable: "{name} jest niedostępny: brak aktualnych odczytów.",
    not_daly: "{name} nie jest balanserem DALY: wybierz balanser w ustawieniach karty.",
    pack: "Pakiet",
    delta: "Różnica",
    turn_on: "start {value}",
    lowest: "Najniższe",
    highest: "Najwyższe",
    cell: "Ogniwo {cell}",
    balancing: "Balansowanie",
    expected: "oczekiwane",
    reported: "zgłaszane",
    yes: "tak",
    no: "nie",
    balancing_cell: "balansowane",
    warnings: "Ostrzeżenia",
    faults: "Awarie",
    none: "brak",
    active: "aktywne",
    device: "Balanser",
    title: "Tytuł (opcjonalnie)",
    trend: "Trend przy pełnym naładowaniu",
    trend_up: "nierównowaga rośnie",
    trend_down: "wyrównuje się",
    trend_flat: "bez zmian",
    trend_unknown: "potrzeba 3 dni z pełnym naładowaniem",
    yesterday: "wczoraj {value}",
    weakest: "Najsłabsze ogniwo",
    weakest_cell: "najsłabsze ogniwo (najczęściej najniższe pod koniec rozładowania)",
    not_yet: "jeszcze nieznane",
  },
  cs: {
    name: "Články balancéru DALY",
    description: "Každý článek aktivního balancéru DALY jako sloupec: nejnižší a nejvyšší zvýrazněné, rozdíl, balancování, varování a poruchy.",
    pick_device: "Vyberte balancér DALY v nastavení karty.",
    device_missing: "Tento balancér DALY už v Home Assistantu není.",
    unavailable: "{name} není dostupný: žádné aktuální hodnoty.",
    not_daly: "{name} není balancér DALY: vyberte balancér v nastavení karty.",
    pack: "Baterie",
    delta: "Rozdíl",
    turn_on: "zapnutí {value}",
    lowest: "Nejnižší",
    highest: "Nejvyšší",
    cell: "Článek {cell}",
    balancing: "Balancování",
    expected: "očekáváno",
    reported: "hlášeno",
    yes: "ano",
    no: "ne",
    balancing_cell: "balancuje",
    warnings: "Varování",
    faults: "Poruchy",
    none: "žádné",
    active: "aktivní",
    device: "Balancér",
    title: "Název (volitelné)",
    trend: "Trend při plném nabití",
    trend_up: "nerovnováha roste",
    trend_down: "vyrovnává se",
    trend_flat: "beze změny",
    trend_unknown: "potřebuje 3 dny s plným nabitím",
    yesterday: "včera {value}",
    weakest: "Nejslabší článek",
    weakest_cell: "nejslabší článek (nejčastěji nejnižší na konci vybíjení)",
    not_yet: "zatím neznámé",
  },
};

/** The language the user reads Home Assistant in, when the card has it; English otherwise. */
function language(hass) {
  const lang = (hass && (hass.locale?.language || hass.language)) || "en";
  return lang.split("-")[0] in STRINGS ? lang : "en";
}

function translate(hass, key, values = {}) {
  const table = STRINGS[language(hass).split("-")[0]];
  const text = table[key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function fire(node, type, detail) {
  node.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
}

/**
 * The locales whose numbers look like the user's number format (profile → Number format), as
 * Home Assistant's frontend maps them (numberFormatToLocale); the language's when it follows it.
 */
function numberLocale(hass) {
  const locale = hass.locale || {};
  switch (locale.number_format) {
    case "comma_decimal":
      return ["en-US", "en"];
    case "decimal_comma":
      return ["de", "es", "it"];
    case "space_comma":
      return ["fr", "sv", "cs"];
    case "quote_decimal":
      return ["de-CH"];
    case "system":
      return undefined;
    default:
      return locale.language || hass.language || "en";
  }
}

/** A number the card computed itself, in the user's number format with ``digits`` decimals. */
function formatNumber(hass, value, digits) {
  const options = { minimumFractionDigits: digits, maximumFractionDigits: digits };
  if (hass.locale?.number_format === "none") options.useGrouping = false;
  return new Intl.NumberFormat(numberLocale(hass), options).format(value);
}

/**
 * An entity's state as Home Assistant shows it everywhere else: the user's number format, the
 * entity's display precision and unit. ``{value, unit}``; null when it has no reading.
 */
function reading(hass, stateObj) {
  if (!stateObj || UNAVAILABLE.has(stateObj.state)) return null;
  const unit = stateObj.attributes.unit_of_measurement || "";
  if (hass.formatEntityStateToParts) {
    const parts = hass.formatEntityStateToParts(stateObj);
    const of = (type) =>
      parts
        .filter((part) => part.type === type)
        .map((part) => part.value)
        .join("");
    return { value: of("value"), unit: of("unit") || (parts.length > 1 ? "" : unit) };
  }
  if (hass.formatEntityState) {
    // Older frontends: the whole text, the unit at its end.
    const text = hass.formatEntityState(stateObj);
    return unit && text.endsWith(unit) ? { value: text.slice(0, -unit.length).trim(), unit } : { value: text, unit: "" };
  }
  const value = Number(stateObj.state);
  if (!Number.isFinite(value)) return { value: stateObj.state, unit };
  const decimals = (stateObj.state.split(".")[1] || "").length;
  return { value: formatNumber(hass, value, decimals), unit };
}

/** ``reading`` as one text ("3,310 V"). */
function readingText(hass, stateObj) {
  const shown = reading(hass, stateObj);
  return shown === null ? "" : `${shown.value}${shown.unit ? ` ${shown.unit}` : ""}`;
}

/** A state's number in the unit given (V or mV), whatever unit the user picked; null if none. */
function measured(stateObj, unit) {
  if (!stateObj || UNAVAILABLE.has(stateObj.state)) return null;
  const value = Number(stateObj.state);
  if (!Number.isFinite(value)) return null;
  const own = stateObj.attributes.unit_of_measurement;
  const factor = { V: 1, mV: 1000 };
  if (!(own in factor) || !(unit in factor)) return value;
  return (value / factor[own]) * factor[unit];
}

/** The cell number in a cell entity's unique id (``<entry>_cell_voltage_3`` → 3). */
function cellNumber(uniqueId) {
  const match = /_(\d+)$/.exec(uniqueId || "");
  return match ? Number(match[1]) : null;
}

/** Entity ids in natural order (cell_2 before cell_10): the cells' order until the registry answers. */
function naturalOrder(a, b) {
  return a.localeCompare(b, undefined, { numeric: true });
}

/** The module's entities by translation key: {cell_voltage: [ids…], pack_voltage: [id], …}. */
function moduleEntities(hass, deviceId) {
  const found = {};
  for (const entry of Object.values(hass.entities || {})) {
    if (entry.device_id !== deviceId || entry.platform !== DOMAIN || !entry.translation_key) continue;
    (found[entry.translation_key] ??= []).push(entry.entity_id);
  }
  for (const ids of Object.values(found)) ids.sort(naturalOrder);
  return found;
}

class DalyBalancerCard extends HTMLElement {
  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this._numbers = new Map(); // entity id → cell number, from the entity registry
    this._asked = "";
    this._drawn = null;
    this.shadowRoot.addEventListener("click", (ev) => {
      const target = ev.composedPath().find((node) => node.dataset?.entity);
      if (target) fire(this, "hass-more-info", { entityId: target.dataset.entity });
    });
  }

  static getConfigElement() {
    return document.createElement(EDITOR);
  }

  static getStubConfig(hass) {
    const entry = Object.values(hass.entities || {}).find((e) => e.platform === DOMAIN && e.device_id);
    return { device_id: entry ? entry.device_id : "" };
  }

  setConfig(config) {
    if (!config || typeof config !== "object") throw new Error("Invalid configuration");
    this._config = config;
    this._drawn = null;
    this._render();
  }

  set hass(hass) {
    this._hass = hass;
    this._render();
  }

  get hass() {
    return this._hass;
  }

  getCardSize() {
    const entities = this._hass && this._config ? moduleEntities(this._hass, this._config.device_id) : {};
    const cells = this._hass && this._config ? (entities.cell_voltage || []).length : 16;
    const insights = entities.difference_trend || entities.weakest_cell ? 1 : 0;
    return 3 + insights + 2 * Math.ceil(cells / 8);
  }

  getGridOptions() {
    return { columns: 12, min_columns: 6 };
  }

  /** Cell numbers from the entity registry's unique ids (renamed entities keep theirs), asked once per set. */
  _askNumbers(cellIds) {
    const key = cellIds.join(",");
    if (!cellIds.length || this._asked === key) return;
    this._asked = key;
    this._hass
      .callWS({ type: "config/entity_registry/get_entries", entity_ids: cellIds })
      .then((entries) => {
        for (const [entityId, entry] of Object.entries(entries || {})) {
          const number = cellNumber(entry?.unique_id);
          if (number !== null) this._numbers.set(entityId, number);
        }
        this._drawn = null;
        this._render();
      })
      .catch(() => {}); // natural order of the entity ids stays
  }

  _render() {
    const hass = this._hass;
    const config = this._config;
    if (!hass || !config) return;
    const entities = config.device_id ? moduleEntities(hass, config.device_id) : {};
    // Draw again only when something the card shows changed (hass changes on every state).
    const watched = Object.values(entities).flat();
    const device = hass.devices?.[config.device_id];
    const signature = [config, device, hass.entities, hass.locale, ...watched.map((id) => hass.states[id])];
    if (this._drawn && signature.length === this._drawn.length && signature.every((v, i) => v === this._drawn[i])) {
      return;
    }
    this._drawn = signature;
    this._askNumbers([...(entities.cell_voltage || []), ...(entities.cell_balancing || [])]);
    const t = (key, values) => translate(hass, key, values);
    const name = config.title || device?.name_by_user || device?.name || t("name");
    let body;
    if (!config.device_id) body = this._message(t("pick_device"));
    else if (!device) body = this._message(t("device_missing"), true);
    else if (!hass.entities) body = "";  // the entity registry has not arrived yet
    // A device of another integration (the card's settings allow any device id in YAML).
    else if (!watched.length) body = this._message(t("not_daly", { name }), true);
    else body = this._module(hass, entities, name, t);
    this.shadowRoot.innerHTML = `<style>${STYLE}</style>
      <ha-card>
        <h1 class="card-header">${escape(name)}</h1>
        <div class="card-content">${body}</div>
      </ha-card>`;
  }

  _message(text, isError = false) {
    return `<p class="message${isError ? " error" : ""}" role="status">${escape(text)}</p>`;
  }

  _module(hass, entities, name, t) {
    const one = (key) => (entities[key] || [])[0];
    const state = (id) => (id ? hass.states[id] : undefined);
    const cells = (entities.cell_voltage || [])
      .map((id, index) => ({ id, number: this._numbers.get(id) ?? index + 1, volts: measured(state(id), "V") }))
      .filter((cell) => cell.volts !== null)
      .sort((a, b) => a.number - b.number);
    if (!cells.length) return this._message(t("unavailable", { name }), true);

    const shown = (id) => readingText(hass, state(id));
    const volts = cells.map((cell) => cell.volts);
    const low = volts.indexOf(Math.min(...volts));
    const high = volts.indexOf(Math.max(...volts));

    // The bars' scale: the chemistry's plausible range; the cells' own range widened otherwise.
    const chemistry = state(one("battery_type"))?.attributes || {};
    let bottom = Number(chemistry.plausible_min);
    let top = Number(chemistry.plausible_max);
    if (!Number.isFinite(bottom) || !Number.isFinite(top) || top <= bottom) {
      bottom = volts[low] - 0.1;
      top = volts[high] + 0.1;
    }
    const share = (value) => Math.min(1, Math.max(0, (value - bottom) / (top - bottom)));
    const startVolts = measured(state(one("balance_start_voltage")), "V");

    // The insights' weakest cell (most often lowest at the bottom of charge), when it has one.
    const weakestState = state(one("weakest_cell"));
    const weakest = weakestState && !UNAVAILABLE.has(weakestState.state) ? Number(weakestState.state) : null;

    const balancingOf = new Map();
    (entities.cell_balancing || []).forEach((id, index) => {
      const s = state(id);
      if (s && !UNAVAILABLE.has(s.state)) balancingOf.set(this._numbers.get(id) ?? index + 1, s.state === "on");
    });

    const bars = cells
      .map((cell, index) => {
        const classes = ["cell"];
        const notes = [];
        if (index === low) {
          classes.push("lowest");
          notes.push(t("lowest"));
        }
        if (index === high) {
          classes.push("highest");
          notes.push(t("highest"));
        }
        if (cell.number === weakest) {
          classes.push("weakest");
          notes.push(t("weakest_cell"));
        }
        if (balancingOf.get(cell.number)) {
          classes.push("balancing");
          notes.push(t("balancing_cell"));
        }
        const label = `${t("cell", { cell: cell.number })}: ${shown(cell.id)}${notes.length ? `, ${notes.join(", ")}` : ""}`;
        const mark = startVolts === null ? "" : `<span class="start" style="bottom:${(share(startVolts) * 100).toFixed(1)}%"></span>`;
        return `<button class="${classes.join(" ")}" data-entity="${escape(cell.id)}" data-cell="${cell.number}"
            data-voltage="${cell.volts}" title="${escape(label)}" aria-label="${escape(label)}">
          <span class="value">${escape(reading(hass, state(cell.id)).value)}</span>
          <span class="track"><span class="fill" style="height:${(share(cell.volts) * 100).toFixed(1)}%"></span>${mark}</span>
          <span class="number">${cell.number}</span>
        </button>`;
      })
      .join("");

    const facts = [];
    const pack = one("pack_voltage");
    const packVolts = measured(state(pack), "V");
    if (packVolts !== null) facts.push(this._fact(pack, t("pack"), shown(pack), "pack"));
    const deltaId = one("cell_delta");
    const deltaMv = measured(state(deltaId), "mV");
    const delta = deltaMv ?? (volts[high] - volts[low]) * 1000;
    const deltaText = deltaMv === null ? `${formatNumber(hass, delta, 0)} mV` : shown(deltaId);
    const turnOnId = one("balance_start_delta");
    const turnOn = measured(state(turnOnId), "mV");
    const level = turnOn === null ? "" : delta >= turnOn ? "over" : "under";
    const limit = turnOn === null ? "" : `<small>${escape(t("turn_on", { value: shown(turnOnId) }))}</small>`;
    facts.push(this._fact(deltaId || cells[high].id, t("delta"), deltaText, `delta ${level}`, limit));
    facts.push(this._fact(cells[low].id, t("lowest"), `${cells[low].number} · ${shown(cells[low].id)}`, "low"));
    facts.push(this._fact(cells[high].id, t("highest"), `${cells[high].number} · ${shown(cells[high].id)}`, "high"));

    return `<div class="facts">${facts.join("")}</div>
      ${this._insights(hass, one, shown, cells, weakest, t)}
      ${this._status(hass, entities, t)}
      <div class="cells">${bars}</div>`;
  }

  _fact(entityId, label, value, extra = "", after = "") {
    return `<button class="fact ${extra}" data-entity="${escape(entityId)}">
      <span class="label">${escape(label)}</span><span class="reading">${escape(value)}${after}</span></button>`;
  }

  /**
   * The pack insights: the top-of-charge difference's trend (an arrow: up is a growing imbalance)
   * and the weakest cell. Nothing when the integration has no such entities (an older version,
   * or the user disabled them); "not yet" while they have too few days.
   */
  _insights(hass, one, shown, cells, weakest, t) {
    const present = (id) => id && hass.states[id] && hass.states[id].state !== "unavailable";
    const facts = [];
    const trendId = one("difference_trend");
    if (present(trendId)) {
      const trendState = hass.states[trendId];
      const slope = UNAVAILABLE.has(trendState.state) ? NaN : Number(trendState.state);
      let direction = "unknown";
      let text = "–";
      if (Number.isFinite(slope)) {
        direction = slope > FLAT_MV_PER_DAY ? "up" : slope < -FLAT_MV_PER_DAY ? "down" : "flat";
        text = shown(trendId);
        if (slope > 0 && !text.startsWith("+")) text = `+${text}`;
      }
      const arrow = { up: "↑", down: "↓", flat: "→", unknown: "" }[direction];
      const notes = [t(`trend_${direction}`)];
      const yesterdayId = one("top_difference_yesterday");
      const yesterday = present(yesterdayId) ? shown(yesterdayId) : "";
      if (yesterday) notes.push(t("yesterday", { value: yesterday }));
      const mark = arrow ? `<span class="arrow" aria-hidden="true">${arrow}</span> ` : "";
      facts.push(`<button class="fact trend ${direction}" data-entity="${escape(trendId)}"
        title="${escape(`${t("trend")}: ${text}, ${notes.join(", ")}`)}">
        <span class="label">${escape(t("trend"))}</span>
        <span class="reading">${mark}${escape(text)}<small>${escape(notes.join(" · "))}</small></span></button>`);
    }
    const weakestId = one("weakest_cell");
    if (present(weakestId)) {
      const cell = cells.find((c) => c.number === weakest);
      const text = weakest === null ? "–" : cell ? `${weakest} · ${shown(cell.id)}` : String(weakest);
      const after = weakest === null ? `<small>${escape(t("not_yet"))}</small>` : "";
      facts.push(this._fact(weakestId, t("weakest"), text, "weakest", after));
    }
    return facts.length ? `<div class="facts insights">${facts.join("")}</div>` : "";
  }

  /** Balancing expected and reported, warnings and faults: each when the module has it. */
  _status(hass, entities, t) {
    const chips = [];
    const known = (key) => {
      const id = (entities[key] || [])[0];
      const s = id && hass.states[id];
      return s && !UNAVAILABLE.has(s.state) ? s : null;
    };
    const onOff = (key, label) => {
      const s = known(key);
      if (!s) return;
      const on = s.state === "on";
      chips.push(`<button class="chip ${key} ${on ? "on" : "off"}" data-entity="${escape(s.entity_id)}">
        ${escape(label)}: <b>${escape(t(on ? "yes" : "no"))}</b></button>`);
    };
    onOff("balancing_expected", `${t("balancing")} ${t("expected")}`);
    onOff("balancing", `${t("balancing")} ${t("reported")}`);
    for (const [key, label] of [
      ["warning", t("warnings")],
      ["fault", t("faults")],
    ]) {
      const s = known(key);
      if (!s) continue;
      const on = s.state === "on";
      // The active bits as a list of keys; Home Assistant translates them element by element.
      const attribute = Object.keys(s.attributes).find((name) => Array.isArray(s.attributes[name]));
      const named = attribute ? s.attributes[attribute] : [];
      const listed = hass.formatEntityAttributeValue ? hass.formatEntityAttributeValue(s, attribute) : named.join(", ");
      const text = on ? (named.length ? listed : t("active")) : t("none");
      chips.push(`<button class="chip problem ${key} ${on ? "on" : "off"}" data-entity="${escape(s.entity_id)}">
        ${escape(label)}: <b>${escape(text)}</b></button>`);
    }
    return chips.length ? `<div class="status">${chips.join("")}</div>` : "";
  }
}

const STYLE = `
  :host { display: block; }
  .card-content { display: flex; flex-direction: column; gap: 12px; container-type: inline-size; }
  button { font: inherit; color: inherit; background: none; border: 0; padding: 0; cursor: pointer; text-align: inherit; }
  button:focus-visible { outline: 2px solid var(--primary-color); outline-offset: 2px; }
  .message { margin: 0; color: var(--secondary-text-color); }
  .message.error { color: var(--error-color, #db4437); }
  .facts { display: grid; grid-template-columns: repeat(4, 1fr); gap: 8px; }
  .facts.insights { grid-template-columns: 3fr 1fr; }
  @container (max-width: 400px) { .facts { grid-template-columns: 1fr 1fr; } .facts.insights { grid-template-columns: 2fr 1fr; } }
  .fact { display: flex; flex-direction: column; border-radius: 8px; padding: 6px 8px;
    background: var(--secondary-background-color, rgba(127, 127, 127, 0.1)); }
  .fact .label { font-size: 0.8em; color: var(--secondary-text-color); }
  .fact .reading { font-weight: 500; font-variant-numeric: tabular-nums; color: var(--primary-text-color); }
  .fact small { display: block; font-size: 0.75em; font-weight: 400; color: var(--secondary-text-color); }
  .delta.under .reading { color: var(--success-color, #43a047); }
  .delta.over .reading { color: var(--warning-color, #ffa600); }
  .low .reading { color: var(--blue-color, #2196f3); }
  .high .reading { color: var(--orange-color, #ff9800); }
  .trend .arrow { font-weight: 700; }
  .trend.up .arrow { color: var(--warning-color, #ffa600); }
  .trend.down .arrow { color: var(--success-color, #43a047); }
  .trend.flat .arrow { color: var(--secondary-text-color); }
  .fact.weakest .reading { color: var(--error-color, #db4437); }
  .status { display: flex; flex-wrap: wrap; gap: 6px; }
  .chip { border-radius: 16px; padding: 2px 10px; font-size: 0.85em; color: var(--secondary-text-color);
    border: 1px solid var(--divider-color, rgba(127, 127, 127, 0.3)); }
  .chip.on { color: var(--primary-text-color); border-color: var(--primary-color); }
  .chip.problem.on { color: var(--error-color, #db4437); border-color: var(--error-color, #db4437); }
  .cells { display: grid; grid-template-columns: repeat(auto-fill, minmax(38px, 1fr)); gap: 10px 4px; }
  .cell { display: flex; flex-direction: column; align-items: center; gap: 2px; min-width: 0; }
  .cell .value { font-size: 0.72em; font-variant-numeric: tabular-nums; color: var(--secondary-text-color); }
  .cell .number { font-size: 0.8em; color: var(--secondary-text-color); }
  .track { position: relative; width: 70%; height: 88px; border-radius: 4px; overflow: hidden;
    background: var(--divider-color, rgba(127, 127, 127, 0.2)); }
  .fill { position: absolute; left: 0; right: 0; bottom: 0;
    background: color-mix(in srgb, var(--primary-color) 45%, var(--card-background-color, #fff)); }
  .start { position: absolute; left: 0; right: 0; border-top: 1px dashed var(--primary-text-color); opacity: 0.5; }
  .lowest .fill { background: var(--blue-color, #2196f3); }
  .highest .fill { background: var(--orange-color, #ff9800); }
  .lowest .value, .highest .value, .lowest .number, .highest .number { color: var(--primary-text-color); font-weight: 700; }
  .weakest .track { outline: 2px solid var(--error-color, #db4437); outline-offset: 1px; }
  .weakest .number { color: var(--text-primary-color, #fff); background: var(--error-color, #db4437);
    border-radius: 8px; padding: 0 5px; font-weight: 700; }
  .balancing .fill { background-image: repeating-linear-gradient(45deg, transparent 0 4px, rgba(255, 255, 255, 0.35) 4px 8px); }
`;

/** The visual editor: the balancer (only this integration's devices) and an optional title. */
class DalyBalancerCardEditor extends HTMLElement {
  setConfig(config) {
    this._config = config;
    this._render();
  }

  set hass(hass) {
    this._hass = hass;
    this._render();
  }

  _render() {
    if (!this._hass || !this._config) return;
    if (!this._form) {
      this._form = document.createElement("ha-form");
      this._form.addEventListener("value-changed", (ev) => {
        ev.stopPropagation();
        const config = { ...this._config, ...ev.detail.value };
        if (!config.title) delete config.title;
        this._config = config;
        fire(this, "config-changed", { config });
      });
      this.appendChild(this._form);
    }
    this._form.hass = this._hass;
    this._form.data = this._config;
    this._form.schema = [
      { name: "device_id", required: true, selector: { device: { filter: [{ integration: DOMAIN }] } } },
      { name: "title", selector: { text: {} } },
    ];
    this._form.computeLabel = (schema) => translate(this._hass, schema.name === "device_id" ? "device" : "title");
  }
}

// Home Assistant loads this module while its own app boots, and the app replaces
// window.customElements with a scoped-registry polyfill. When this module runs first (a cold,
// slow page load), its definitions stay in the registry that was replaced: Home Assistant never
// finds the card and shows "Custom element doesn't exist" until the page is reloaded. So the
// elements are defined again on whatever registry is current once Home Assistant's own root
// element is defined (a no-op when they are there already).
function defineElements() {
  const registry = window.customElements;
  if (!registry.get(CARD)) registry.define(CARD, DalyBalancerCard);
  if (!registry.get(EDITOR)) registry.define(EDITOR, DalyBalancerCardEditor);
}

defineElements();
window.customElements.whenDefined("home-assistant").then(defineElements);

window.customCards = window.customCards || [];
if (!window.customCards.some((card) => card.type === CARD)) {
  window.customCards.push({
    type: CARD,
    name: translate(document.querySelector("home-assistant")?.hass, "name"),
    description: translate(document.querySelector("home-assistant")?.hass, "description"),
    preview: true,
    documentationURL: "https://github.com/daly-active-balance/daly_active_balance#cells-card",
  });
}
